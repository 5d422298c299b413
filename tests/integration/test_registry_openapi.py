"""``exchange registry`` started from the command line, probed by schemathesis from its own
OpenAPI document: no generated request gets a 5xx, every 4xx carries Confluent's error body."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_support import cli_env

from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.http.server import free_port

pytestmark = pytest.mark.integration
PASSWORD = "pw-police"


@pytest.fixture(scope="module")
def registry_cli(
    bus: Connection, loaded_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    credentials = tmp_path_factory.mktemp("credentials")
    (credentials / "police.password").write_text(PASSWORD + "\n")
    port = free_port()
    command = [sys.executable, "-m", "exchange", "registry", "--bootstrap-servers"]
    command += [bus.bootstrap, "--port", str(port), "--credentials-dir", str(credentials)]
    proc = subprocess.Popen(
        command, env=cli_env(bus), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "exchange registry exited"
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "exchange registry did not become healthy"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def probe(url: str) -> tuple[int, list[tuple[str, int, str]]]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    auth = {"Authorization": "Basic " + base64.b64encode(f"police:{PASSWORD}".encode()).decode()}
    problems: list[tuple[str, int, str]] = []
    sent = [0]
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case: object) -> None:
            sent[0] += 1
            r = case.call(base_url=url, headers=auth)  # type: ignore[attr-defined]
            if r.status_code >= 500 or (
                r.status_code >= 400 and set(r.json()) != {"error_code", "message"}
            ):
                problems.append((case.operation.label, r.status_code, r.text[:200]))  # type: ignore[attr-defined]

        check()
    return sent[0], problems


async def test_no_generated_request_gets_a_5xx_and_every_4xx_is_confluent_shaped(
    registry_cli: str,
) -> None:
    sent, problems = await asyncio.to_thread(probe, registry_cli)
    assert sent > 200
    assert not problems, f"{len(problems)} bad answers: " + " | ".join(
        f"{label} -> {status}: {text}" for label, status, text in problems[:5]
    )


def test_the_registry_command_is_listed(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "exchange", "registry", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--credentials-dir" in out

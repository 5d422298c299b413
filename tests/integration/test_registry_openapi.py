"""``exchange registry`` started from the command line, probed by schemathesis from its own
OpenAPI document: no generated request gets a 5xx, every 4xx carries Confluent's error body."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cli_support import cli_env

from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.http.server import free_port

pytestmark = pytest.mark.integration
PASSWORD = "pw-police"
#: generated requests per operation; run longer with REGISTRY_PROBE_EXAMPLES=500
EXAMPLES = int(os.environ.get("REGISTRY_PROBE_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def registry_cli(
    bus: Connection, loaded_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    credentials = tmp_path_factory.mktemp("credentials")
    (credentials / "police.password").write_text(PASSWORD + "\n")
    port = free_port()
    command = [sys.executable, "-m", "exchange", "registry", "--bootstrap-servers"]
    command += [bus.bootstrap, "--port", str(port), "--credentials-dir", str(credentials)]
    log = (credentials / "registry.log").open("wb")  # read back when a probe fails
    proc = subprocess.Popen(command, env=cli_env(bus), stdout=log, stderr=subprocess.STDOUT)
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
        yield Registry(url, credentials / "registry.log")
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@dataclass(frozen=True)
class Registry:
    url: str
    log: Path  # its stdout and stderr: the tracebacks behind a 5xx

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def probe(url: str) -> tuple[int, list[tuple[str, int, str]]]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    auth = {"Authorization": "Basic " + base64.b64encode(f"police:{PASSWORD}".encode()).decode()}
    problems: list[tuple[str, int, str]] = []
    sent = [0]
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case: object) -> None:
            sent[0] += 1
            label = case.operation.label  # type: ignore[attr-defined]
            try:
                r = case.call(base_url=url, headers=auth, timeout=30)  # type: ignore[attr-defined]
            except Exception as exc:  # no answer at all is a problem too, and named as one
                problems.append((label, 0, f"{type(exc).__name__}: {exc}"[:200]))
                return
            if r.status_code >= 500 or (r.status_code >= 400 and not _confluent_body(r.text)):
                problems.append((label, r.status_code, r.text[:200]))

        check()
    return sent[0], problems


def _confluent_body(text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"error_code", "message"}


async def test_no_generated_request_gets_a_5xx_and_every_4xx_is_confluent_shaped(
    registry_cli: Registry,
) -> None:
    sent, problems = await asyncio.to_thread(probe, registry_cli.url)
    assert sent > 200
    assert not problems, (
        f"{len(problems)} bad answers: "
        + " | ".join(f"{label} -> {status}: {text}" for label, status, text in problems[:5])
        + "\nthe registry's log ends:\n"
        + registry_cli.log_tail()
    )


def test_the_registry_command_is_listed(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "exchange", "registry", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--credentials-dir" in out

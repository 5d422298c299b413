"""The data commands of the CLI on a real broker.

``catalog validate | load | show``, ``sample``, ``publish``, ``consume``, all
with ``--bootstrap-servers`` and a private state dir (the user's embedded
broker is never used). The publish/consume round trip runs the installed
``exchange`` script as a subprocess; the other commands run ``exchange.cli.app``
in-process with typer's CliRunner (each Kafka command in a worker thread, so
its ``asyncio.run`` never touches the test session's event loop), which is
several times faster than starting a Python process per command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_support import CONNECTION_VARS, EXCHANGE, cli_env
from typer.testing import CliRunner

from exchange.avro.jsoncodec import from_json
from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.cli import app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"

BIRTH = "birth_medical_certificate"


def exchange(
    *args: str, state_dir: Path, bus: Connection | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = cli_env(bus, EXCHANGE_STATE_DIR=str(state_dir))
    return subprocess.run(
        [EXCHANGE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str, state_dir: Path | None = None, bus: Connection | None = None) -> Result:
    """Run the CLI app in-process (in a worker thread: the Kafka commands call asyncio.run)."""
    env: dict[str, str | None] = dict.fromkeys(CONNECTION_VARS)
    if bus is not None:
        env.update(bus.environment())
    if state_dir is not None:
        env["EXCHANGE_STATE_DIR"] = str(state_dir)

    def go() -> Result:
        r = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        return Result(r.exit_code, r.stdout, r.stderr)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(go).result(timeout=60)


@pytest.fixture
def cli(tmp_path: Path, bus: Connection) -> Callable[..., Result]:
    """Run an ``exchange`` command in-process against this module's broker."""

    def run(*args: str) -> Result:
        return invoke(
            *args, "--bootstrap-servers", bus.bootstrap, state_dir=tmp_path / "state", bus=bus
        )

    return run


@pytest.fixture
def script(tmp_path: Path, bus: Connection) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``exchange`` script against this module's broker."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return exchange(
            *args, "--bootstrap-servers", bus.bootstrap, state_dir=tmp_path / "state", bus=bus
        )

    return run


def test_catalog_validate_passes_on_the_sample_catalog() -> None:
    # a fixed day: from 1 January 2027 validate fails until schemas/calendar/2027.yaml exists
    result = invoke("catalog", "validate", str(SCHEMAS), "--today", "2026-09-30")
    assert result.returncode == 0, result.stderr
    assert "catalog OK: 5 departments, 8 resources" in result.stdout
    assert "warning" not in result.stderr


def test_catalog_validate_names_file_resource_and_field(tmp_path: Path) -> None:
    broken = Path(shutil.copytree(SCHEMAS, tmp_path / "schemas"))
    path = broken / "avro" / f"{BIRTH}.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"].append({"name": "blood_type", "type": "string", "doc": "血型"})
    path.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    result = invoke("catalog", "validate", str(broken))
    assert result.returncode == 2
    assert "nothing was applied" in result.stderr
    assert f"resources/{BIRTH}.yaml" in result.stderr
    assert f"resource {BIRTH!r}, field 'blood_type'" in result.stderr
    assert "has no share type" in result.stderr


def test_catalog_load_and_show_json(cli: Callable[..., Result], sample_catalog: Catalog) -> None:
    loaded = cli(
        "catalog", "load", str(SCHEMAS), "--actor", "tests", "--allow-unsigned", "test suite"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "catalog version 1 loaded" in loaded.stdout or "unchanged" in loaded.stdout

    shown = cli("catalog", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert isinstance(data.pop("version"), int)
    history = data.pop("schema_history")
    want = sample_catalog.model_dump(mode="json", by_alias=True)
    want.pop("schema_history")
    assert data == want
    assert data["resources"][BIRTH]["name_zh"] == "出生医学证明"  # Chinese kept readable
    assert history[BIRTH] == [sample_catalog.resource(BIRTH).schema_id]

    again = cli("catalog", "load", str(SCHEMAS), "--allow-unsigned", "test suite")
    assert again.returncode == 0, again.stderr
    assert "catalog unchanged" in again.stdout

    table = cli("catalog", "show")
    assert table.returncode == 0, table.stderr
    assert "catalog version" in table.stdout
    assert "出生医学证明" in table.stdout


def test_incompatible_catalog_load_is_refused_with_the_reason(
    cli: Callable[..., Result], loaded_catalog: Catalog, tmp_path: Path
) -> None:
    changed = Path(shutil.copytree(SCHEMAS, tmp_path / "schemas"))
    path = changed / "avro" / "business_licence.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"].append({"name": "fax", "type": "string", "doc": "传真 Fax"})
    path.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    before = json.loads(cli("catalog", "show", "--json").stdout)

    result = cli("catalog", "load", str(changed), "--allow-unsigned", "test suite")

    assert result.returncode == 2
    assert "field 'fax' added without a default" in result.stderr
    assert "resource 'business_licence'" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(cli("catalog", "show", "--json").stdout) == before


def test_sample_is_reproducible(tmp_path: Path) -> None:
    first = invoke("sample", "--catalog", str(SCHEMAS), BIRTH, "--count", "20", "--seed", "1")
    second = invoke("sample", "--catalog", str(SCHEMAS), BIRTH, "--count", "20", "--seed", "1")
    other = invoke("sample", "--catalog", str(SCHEMAS), BIRTH, "--count", "20", "--seed", "2")
    assert first.returncode == 0, first.output
    assert first.stdout == second.stdout
    assert first.stdout != other.stdout
    lines = first.stdout.splitlines()
    assert len(lines) == 20
    schema = load_catalog(SCHEMAS).resource(BIRTH).schema_
    for line in lines:
        from_json(schema, json.loads(line))  # every line is a valid record
    assert any("\u4e00" <= ch <= "\u9fff" for ch in first.stdout)  # Chinese, not \\u escapes

    out = tmp_path / "births.jsonl"
    to_file = invoke(
        "sample",
        "--catalog",
        str(SCHEMAS),
        BIRTH,
        "--count",
        "20",
        "--seed",
        "1",
        "--output",
        str(out),
    )
    assert to_file.returncode == 0
    assert out.read_text(encoding="utf-8") == first.stdout


def test_publish_then_consume_returns_the_file(
    cli: Callable[..., Result],
    script: Callable[..., subprocess.CompletedProcess[str]],
    loaded_catalog: Catalog,
    tmp_path: Path,
) -> None:
    """The round trip of the issue, through the installed script."""
    path = tmp_path / "births.jsonl"
    sample = invoke(
        "sample",
        "--catalog",
        str(SCHEMAS),
        BIRTH,
        "--count",
        "20",
        "--seed",
        "1",
        "--output",
        str(path),
    )
    assert sample.returncode == 0

    published = script("publish", "--as", "health", BIRTH, str(path))
    assert published.returncode == 0, published.stderr
    assert f"published 20 records of {BIRTH} as health" in published.stdout

    consumed = script("consume", "--as", "health", BIRTH, "--json", "--timeout", "2")
    assert consumed.returncode == 0, consumed.stderr
    got = [json.loads(line) for line in consumed.stdout.splitlines()]
    want = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def by_key(r: dict[str, Any]) -> str:
        return str(r["certificate_no"])

    assert sorted(got, key=by_key) == sorted(want, key=by_key)

    first = cli("consume", "--as", "health", BIRTH, "--max", "3", "--timeout", "2")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 3
    assert first.stdout.startswith(f"gov.src.health.{BIRTH}[")
    assert "3 records" in first.stderr


def test_bad_file_is_refused_with_its_line_and_nothing_is_sent(
    cli: Callable[..., Result], loaded_catalog: Catalog, tmp_path: Path
) -> None:
    resource = "population_basic"
    path = tmp_path / "people.jsonl"
    invoke(
        "sample",
        "--catalog",
        str(SCHEMAS),
        resource,
        "--count",
        "10",
        "--seed",
        "3",
        "--output",
        str(path),
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[6])
    bad["birth_date"] = "1990-13-01"
    lines[6] = json.dumps(bad, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = cli("publish", "--as", "police", resource, str(path))

    assert result.returncode != 0
    assert "line 7" in result.stderr
    assert "'birth_date'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "published" not in result.stdout

    consumed = cli("consume", "--as", "police", resource, "--timeout", "1")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == ""
    assert "0 records" in consumed.stderr


def test_publishing_someone_elses_resource_is_denied(
    cli: Callable[..., Result], loaded_catalog: Catalog, tmp_path: Path
) -> None:
    path = tmp_path / "births.jsonl"
    invoke("sample", "--catalog", str(SCHEMAS), BIRTH, "--count", "2", "--output", str(path))
    result = cli("publish", "--as", "police", BIRTH, str(path))
    assert result.returncode == 2
    assert "'police' cannot publish" in result.stderr
    assert "Traceback" not in result.stderr


async def _topics(bus: Connection) -> set[str]:
    c = kafka.consumer(bus)
    await c.start()
    try:
        return set(await c.topics())
    finally:
        await c.stop()


@pytest.mark.parametrize(
    ("department", "resource", "expected"),
    [
        (
            "civil_affairs",
            "business_licence",
            [
                "'civil_affairs' has not subscribed to 'business_licence'",
                "exchange subscribe --as civil_affairs business_licence",
            ],
        ),
        ("civil_affairs", "death_registration", ["not entitled", "不予共享"]),
    ],
    ids=["not-subscribed", "not-shared"],
)
async def test_consume_without_a_subscription_says_why_and_creates_nothing(
    cli: Callable[..., Result],
    loaded_catalog: Catalog,
    bus: Connection,
    department: str,
    resource: str,
    expected: list[str],
) -> None:
    result = cli("consume", "--as", department, resource, "--timeout", "1")

    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    for part in expected:
        assert part in text
    assert "0 records" not in result.stderr
    assert "Traceback" not in result.stderr
    assert f"gov.dlv.{department}.{resource}" not in await _topics(bus)


def test_explain_tells_entitled_from_delivered(
    cli: Callable[..., Result], loaded_catalog: Catalog
) -> None:
    before = cli("explain", "--as", "civil_affairs", BIRTH)
    assert before.returncode == 0, before.stderr
    assert "entitled to (可获取的字段): certificate_no, child_name" in before.stdout
    assert "delivered (已接收): nothing yet: 'civil_affairs' has not subscribed" in before.stdout
    assert "fields delivered" not in before.stdout
    data = json.loads(cli("explain", "--as", "civil_affairs", BIRTH, "--json").stdout)
    assert data["receiving"] is False
    assert data["delivered_fields"] == []
    assert "certificate_no" in data["entitled_fields"]
    assert "exchange subscribe --as civil_affairs" in data["not_receiving_because"]

    assert cli("subscribe", "--as", "civil_affairs", BIRTH).returncode == 0
    after = json.loads(cli("explain", "--as", "civil_affairs", BIRTH, "--json").stdout)
    assert after["receiving"] is True
    assert after["delivered_fields"] == after["entitled_fields"] == data["entitled_fields"]
    assert after["topic"] == f"gov.dlv.civil_affairs.{BIRTH}"
    assert after["not_receiving_because"] is None
    shown = cli("explain", "--as", "civil_affairs", BIRTH).stdout
    assert f"delivered (已接收) to gov.dlv.civil_affairs.{BIRTH}: certificate_no" in shown

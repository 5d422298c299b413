"""A hostile catalog load is refused whole and leaves the catalog in force unchanged.

Each case breaks a copy of ``schemas/`` in one hostile way (a YAML bomb,
nesting thousands deep, a binary file, a recursive or huge schema, a schema
change the data on the bus cannot follow) and loads it the way
``exchange catalog load`` does: :func:`load_catalog`, then
:func:`catalog_store.load`. Each raises :class:`CatalogErrors` naming the
file, and afterwards, read back from the bus: the same snapshot in force,
no new record on ``gov.ctl.catalog``, no ``CATALOG_CHANGED`` entry on
``gov.audit``, and a router that was running all along still routes with
the catalog it had.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from routing_support import RouterRun, publish, read_topic, running_router, wait_for

from exchange.audit.entry import Action
from exchange.audit.log import entries_only, read_log
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control import catalog_store
from exchange.dev import sample
from exchange.errors import CatalogErrors

pytestmark = pytest.mark.integration

SAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "schemas"
BMC = "birth_medical_certificate"
LICENCE = "business_licence"


def _write(rel: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_text(text, encoding="utf-8")


def _edit_schema(resource: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "avro" / f"{resource}.avsc"
        schema = json.loads(path.read_text(encoding="utf-8"))
        change(schema)
        path.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")

    return edit


def _recursive(schema: dict[str, Any]) -> None:
    schema["fields"].append(
        {"name": "parent", "type": ["null", schema["name"]], "default": None, "doc": "上级"}
    )


def _type_change(schema: dict[str, Any]) -> None:
    for f in schema["fields"]:
        if f["name"] == "hospital_name":
            f["type"] = "int"


BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
)

CASES: list[Any] = [
    pytest.param(
        _write("departments.yaml", BOMB + "\n"),
        "catalog/departments.yaml:1: YAML anchors (&name) are not allowed",
        id="billion-laughs",
    ),
    pytest.param(
        _write(f"resources/{LICENCE}.yaml", "id: " + "[" * 50_000 + "]" * 50_000 + "\n"),
        f"catalog/resources/{LICENCE}.yaml:1: nested more than 32 levels deep",
        id="deep-yaml",
    ),
    pytest.param(
        lambda root: (root / "resources" / f"{LICENCE}.yaml").write_bytes(bytes(range(256))),
        f"catalog/resources/{LICENCE}.yaml: not UTF-8 text",
        id="binary-yaml",
    ),
    pytest.param(
        _write(f"resources/{LICENCE}.yaml", "id: [unclosed\n  provider: {\n"),
        f"catalog/resources/{LICENCE}.yaml:",
        id="not-yaml",
    ),
    pytest.param(
        _write(f"avro/{LICENCE}.avsc", "[" * 100_000 + "]" * 100_000),
        f"{LICENCE}.avsc: nested more than 32 levels deep",
        id="deep-json-schema",
    ),
    pytest.param(
        _write(f"avro/{LICENCE}.avsc", '{"type": "record"' + " " * 2_000_000 + "}"),
        f"{LICENCE}.avsc: schema file is over the 1000000 bytes allowed",
        id="huge-schema",
    ),
    pytest.param(
        _edit_schema(LICENCE, _recursive),
        f"{LICENCE}.avsc: record type 'gov.exchange.market.BusinessLicence' contains itself",
        id="recursive-schema",
    ),
    pytest.param(
        _edit_schema(BMC, _type_change),
        f"resource {BMC!r}: new schema is not BACKWARD compatible",
        id="incompatible-schema",  # valid on its own: refused by catalog_store.load
    ),
]


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(BMC)
    async with running_router(bus) as run:
        await wait_for(lambda: "hrss" in run.views(BMC), within=15, what="the hrss view")
        yield run


async def catalog_changes(bus: Connection) -> int:
    log = entries_only(await read_log(bus))
    return sum(1 for _, e in log if e.action is Action.CATALOG_CHANGED)


@pytest.mark.parametrize(("breakage", "expected"), CASES)
async def test_a_hostile_catalog_load_leaves_the_catalog_in_force_unchanged(
    bus: Connection,
    router: RouterRun,
    tmp_path: Path,
    breakage: Callable[[Path], None],
    expected: str,
) -> None:
    root = Path(shutil.copytree(SAMPLE_CATALOG, tmp_path / "catalog"))
    breakage(root)
    before = await catalog_store.current(bus)
    assert before is not None
    records = await kafka.read_to_end(bus, topics.CATALOG)
    changes = await catalog_changes(bus)

    with pytest.raises(CatalogErrors) as caught:  # as `exchange catalog load` does it
        await catalog_store.load(
            bus, load_catalog(root), actor="tests", unsigned_override="test suite"
        )

    message = str(caught.value)
    assert "nothing was applied" in message
    assert expected in message, message
    assert len(message) < 2000
    after = await catalog_store.current(bus)
    assert after is not None
    assert (after.version, after.loaded_at, after.actor) == (
        before.version,
        before.loaded_at,
        before.actor,
    )
    assert after.catalog == before.catalog
    assert [r.value for r in await kafka.read_to_end(bus, topics.CATALOG)] == [
        r.value for r in records
    ]
    assert await catalog_changes(bus) == changes
    router.check_alive()
    assert router.router.state.snapshot is not None
    assert router.router.state.snapshot.version == before.version


async def test_the_router_still_routes_with_the_catalog_it_had(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    record = sample.generate(loaded_catalog.resources[BMC].schema_, 1, seed=3)[0]
    [rid] = await publish(bus, loaded_catalog, BMC, [{**record, "certificate_no": "AFTER-HOSTILE"}])
    got = await read_topic(
        bus,
        topics.delivery("hrss", BMC),
        until=lambda out: any(r.record_id == rid for r in out),
    )
    [delivered] = [r for r in got if r.record_id == rid]
    assert delivered.value["certificate_no"] == "AFTER-HOSTILE"
    assert delivered.schema_id == router.views(BMC)["hrss"].schema_id
    router.check_alive()

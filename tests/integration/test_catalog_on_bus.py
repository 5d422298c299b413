"""The catalog on the bus: load, reload, and schema evolution (BACKWARD compatibility).

Every test works relative to the catalog in force on this module's broker
(it loads its own starting point first), so the evolution tests do not
depend on their order. Catalog changes are made on a copy of ``schemas/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader, topic_for
from exchange.control import catalog_store
from exchange.dev.sample import generate
from exchange.errors import CatalogErrors

pytestmark = pytest.mark.integration

SAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "schemas"

BIRTH = "birth_medical_certificate"  # conditional: a new field must be classified
LICENCE = "business_licence"  # unconditional: a new field inherits the share type


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE_CATALOG, tmp_path / "schemas"))


def edit_schema(directory: Path, resource: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / "avro" / f"{resource}.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")


def classify(directory: Path, resource: str, field: str, share_type: str) -> None:
    path = directory / "resources" / f"{resource}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec.setdefault("fields", {})[field] = {"share_type": share_type}
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")


def add_field(field: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda schema: schema["fields"].append(field)


def set_type(name: str, avro_type: Any) -> Callable[[dict[str, Any]], None]:
    def change(schema: dict[str, Any]) -> None:
        for f in schema["fields"]:
            if f["name"] == name:
                f["type"] = avro_type
                return
        raise AssertionError(f"no field {name}")

    return change


async def in_force(bus: Connection) -> catalog_store.Snapshot:
    snap = await catalog_store.current(bus)
    assert snap is not None, "no catalog in force"
    return snap


async def catalog_records(bus: Connection) -> int:
    return len(await kafka.read_to_end(bus, topics.CATALOG))


def assert_same_catalog(got: Catalog, want: Catalog) -> None:
    assert got.departments == want.departments
    assert got.resources.keys() == want.resources.keys()
    for rid, res in want.resources.items():
        assert got.resources[rid] == res, rid
        assert res.schema_id in got.schema_history[rid]


async def test_loaded_sample_catalog_is_in_force(bus: Connection, sample_catalog: Catalog) -> None:
    change = await catalog_store.load(
        bus, sample_catalog, actor="tests", unsigned_override="test suite"
    )
    snap = await in_force(bus)
    assert snap.version == change.version
    assert_same_catalog(snap.catalog, sample_catalog)
    # Chinese text survives the trip through the control topic
    assert snap.catalog.resource(BIRTH).name_zh == "出生医学证明"
    assert snap.catalog.department("health").name_zh == "卫生健康委员会"
    # every resource schema is registered, and each resource has its source topic
    registry = SchemaRegistry(bus)
    await registry.refresh()
    for res in sample_catalog.resources.values():
        assert res.schema_id in registry
        assert registry.schema(res.schema_id) == res.schema_
    # the document on the bus keeps the Avro schema itself
    dumped = snap.catalog.model_dump(mode="json", by_alias=True)
    assert dumped["resources"][BIRTH]["schema"]["name"] == "BirthMedicalCertificate"


async def test_loading_the_same_catalog_twice_is_a_no_op(
    bus: Connection, sample_catalog: Catalog
) -> None:
    await catalog_store.load(bus, sample_catalog, actor="tests", unsigned_override="test suite")
    before = await in_force(bus)
    records = await catalog_records(bus)
    schemas = len(await kafka.read_to_end(bus, topics.SCHEMAS))

    change = await catalog_store.load(
        bus, sample_catalog, actor="someone else", unsigned_override="test suite"
    )

    assert change.empty
    assert change.version == before.version
    after = await in_force(bus)
    assert after.version == before.version
    assert after.actor == before.actor
    assert await catalog_records(bus) == records
    assert len(await kafka.read_to_end(bus, topics.SCHEMAS)) == schemas


async def test_field_added_with_a_default_is_accepted_and_old_records_stay_readable(
    bus: Connection, catalog_dir: Path
) -> None:
    base = load_catalog(catalog_dir)
    await catalog_store.load(bus, base, actor="tests", unsigned_override="test suite")
    before = await in_force(bus)
    old_id = base.resource(BIRTH).schema_id

    # a record written with the schema in force
    old_record = generate(base.resource(BIRTH).schema_, 1, seed=11)[0]
    async with Publisher(bus, before.catalog, "health") as pub:
        await pub.publish(BIRTH, [old_record])

    edit_schema(
        catalog_dir,
        BIRTH,
        add_field(
            {
                "name": "delivery_mode",
                "type": "string",
                "default": "未知",
                "doc": "分娩方式 Mode of delivery",
            }
        ),
    )
    classify(catalog_dir, BIRTH, "delivery_mode", "unconditional")
    evolved = load_catalog(catalog_dir)
    new_id = evolved.resource(BIRTH).schema_id
    assert new_id != old_id

    change = await catalog_store.load(bus, evolved, actor="tests", unsigned_override="test suite")

    assert change.schema_changed == [BIRTH]
    assert change.version == before.version + 1
    after = await in_force(bus)
    assert after.version == before.version + 1
    assert after.catalog.resource(BIRTH).schema_id == new_id
    assert "delivery_mode" in after.catalog.resource(BIRTH).field_names()
    history = after.catalog.schema_history[BIRTH]
    assert history[-2:] == [old_id, new_id]
    assert after.catalog.schema_history[LICENCE] == before.catalog.schema_history[LICENCE]

    # a record of the new version, then both read back: the old id still resolves
    new_record = {**generate(evolved.resource(BIRTH).schema_, 1, seed=12)[0]}
    new_record["delivery_mode"] = "剖宫产"
    async with Publisher(bus, after.catalog, "health") as pub:
        await pub.publish(BIRTH, [new_record])
    async with Reader(bus, topic_for(after.catalog, "health", BIRTH)) as reader:
        got = await reader.read(idle_timeout=1.0)
    by_key = {r.value["certificate_no"]: r for r in got}
    old_got = by_key[old_record["certificate_no"]]
    new_got = by_key[new_record["certificate_no"]]
    assert old_got.schema_id == old_id
    assert old_got.value == old_record
    assert new_got.schema_id == new_id
    assert new_got.value == new_record


async def test_nullable_union_with_null_default_is_accepted(
    bus: Connection, catalog_dir: Path
) -> None:
    await catalog_store.load(
        bus, load_catalog(catalog_dir), actor="tests", unsigned_override="test suite"
    )
    before = await in_force(bus)
    old_id = before.catalog.resource(LICENCE).schema_id

    edit_schema(
        catalog_dir,
        LICENCE,
        add_field(
            {
                "name": "website",
                "type": ["null", "string"],
                "default": None,
                "doc": "网站网址（可空） Website (may be absent)",
            }
        ),
    )
    evolved = load_catalog(catalog_dir)
    change = await catalog_store.load(bus, evolved, actor="tests", unsigned_override="test suite")

    assert change.schema_changed == [LICENCE]
    after = await in_force(bus)
    assert after.version == before.version + 1
    res = after.catalog.resource(LICENCE)
    assert res.schema_id == evolved.resource(LICENCE).schema_id != old_id
    assert res.field("website").nullable
    assert res.field("website").share_type.value == "unconditional"  # inherited
    assert after.catalog.schema_history[LICENCE][-2:] == [old_id, res.schema_id]


async def _assert_rejected(
    bus: Connection, catalog_dir: Path, *expected: str
) -> tuple[CatalogErrors, catalog_store.Snapshot]:
    before = await in_force(bus)
    records = await catalog_records(bus)
    changed = load_catalog(catalog_dir)  # the catalog itself is valid ...
    with pytest.raises(CatalogErrors) as caught:  # ... but not compatible with the one in force
        await catalog_store.load(bus, changed, actor="tests", unsigned_override="test suite")
    message = str(caught.value)
    assert "nothing was applied" in message
    assert "not BACKWARD compatible" in message
    for text in expected:
        assert text in message, message
    after = await in_force(bus)
    assert after.version == before.version
    assert after.catalog == before.catalog
    assert await catalog_records(bus) == records
    return caught.value, before


async def test_field_added_without_a_default_is_rejected(
    bus: Connection, catalog_dir: Path
) -> None:
    await catalog_store.load(
        bus, load_catalog(catalog_dir), actor="tests", unsigned_override="test suite"
    )
    edit_schema(
        catalog_dir,
        BIRTH,
        add_field({"name": "blood_type", "type": "string", "doc": "血型 Blood type"}),
    )
    classify(catalog_dir, BIRTH, "blood_type", "unconditional")
    errors, before = await _assert_rejected(
        bus,
        catalog_dir,
        f"resource {BIRTH!r}",
        "field 'blood_type' added without a default",
    )
    assert len(errors.errors) == 1
    assert f"schema id {before.catalog.resource(BIRTH).schema_id}" in str(errors)


async def test_nullable_field_added_without_a_default_is_rejected(
    bus: Connection, catalog_dir: Path
) -> None:
    await catalog_store.load(
        bus, load_catalog(catalog_dir), actor="tests", unsigned_override="test suite"
    )
    edit_schema(
        catalog_dir,
        LICENCE,
        add_field({"name": "fax", "type": ["null", "string"], "doc": "传真 Fax"}),
    )
    await _assert_rejected(
        bus, catalog_dir, f"resource {LICENCE!r}", "field 'fax' added without a default"
    )


async def test_type_change_string_to_int_is_rejected(bus: Connection, catalog_dir: Path) -> None:
    await catalog_store.load(
        bus, load_catalog(catalog_dir), actor="tests", unsigned_override="test suite"
    )
    edit_schema(catalog_dir, BIRTH, set_type("hospital_name", "int"))
    await _assert_rejected(
        bus,
        catalog_dir,
        f"resource {BIRTH!r}",
        "reader type: int not compatible with writer type: string",
    )


async def test_type_change_rejection_names_the_field(bus: Connection, catalog_dir: Path) -> None:
    await catalog_store.load(
        bus, load_catalog(catalog_dir), actor="tests", unsigned_override="test suite"
    )
    edit_schema(catalog_dir, BIRTH, set_type("hospital_name", "int"))
    await _assert_rejected(bus, catalog_dir, "hospital_name")


async def test_one_bad_resource_rejects_the_whole_load(bus: Connection, catalog_dir: Path) -> None:
    """A compatible change next to an incompatible one: neither is applied."""
    await catalog_store.load(
        bus, load_catalog(catalog_dir), actor="tests", unsigned_override="test suite"
    )
    edit_schema(
        catalog_dir,
        LICENCE,
        add_field({"name": "email", "type": ["null", "string"], "default": None, "doc": "邮箱"}),
    )
    edit_schema(catalog_dir, BIRTH, set_type("birth_weight_grams", "string"))
    _errors, before = await _assert_rejected(bus, catalog_dir, f"resource {BIRTH!r}")
    assert "email" not in (await in_force(bus)).catalog.resource(LICENCE).field_names()
    assert before.catalog.resource(LICENCE).field_names() == (
        load_catalog(SAMPLE_CATALOG).resource(LICENCE).field_names()
    )

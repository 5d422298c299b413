"""A resource added to the catalog while the router runs is routed within seconds.

The router reads source topics by pattern and asks for the cluster's metadata only
every few minutes on its own (a full answer, costly with thousands of delivery
topics); the catalog naming a source topic its subscription lacks makes it ask at
once (exchange/router/source_watch.py). Without that, the new resource's records
would wait for the next periodic refresh.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from routing_support import publish, read_topic, running_router, wait_views

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.clients.department import Department
from exchange.control import catalog_store
from exchange.dev.sample import generate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.embedded_only(
        "adds a resource to the catalog in force, which on the shared Kafka cluster every "
        "later module would inherit"
    ),
]

SAMPLE = Path(__file__).resolve().parents[2] / "schemas"
NEW = "business_licence_branch"


def _with_new_resource(directory: Path) -> Path:
    """A copy of the sample catalog with one more unconditional resource (market's)."""
    shutil.copytree(SAMPLE, directory)
    schema = json.loads((directory / "avro" / "business_licence.avsc").read_text("utf-8"))
    schema["name"] = "BusinessLicenceBranch"
    (directory / "avro" / f"{NEW}.avsc").write_text(json.dumps(schema), "utf-8")
    spec = yaml.safe_load((directory / "resources" / "business_licence.yaml").read_text("utf-8"))
    spec.update(id=NEW, schema=f"../avro/{NEW}.avsc", name_en="Business licence (branches)")
    spec["code"] = spec["code"][:-1] + "9"
    spec["name_zh"] = "分支机构营业执照信息"
    (directory / "resources" / f"{NEW}.yaml").write_text(
        yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), "utf-8"
    )
    return directory


async def test_a_resource_added_while_the_router_runs_is_routed_within_seconds(
    bus: Connection, tmp_path: Path
) -> None:
    await catalog_store.load(
        bus, load_catalog(SAMPLE), actor="tests", unsigned_override="test suite"
    )
    async with running_router(bus) as run:
        wider = load_catalog(_with_new_resource(tmp_path / "schemas"))
        await catalog_store.load(bus, wider, actor="tests", unsigned_override="test suite")
        async with Department(bus, "hrss") as hrss:
            await hrss.subscribe(NEW)
        await wait_views(run, NEW, {"hrss": wider.resources[NEW].field_names()})
        rows = generate(wider.resources[NEW].schema_, 5, seed=3)
        started = time.monotonic()
        await publish(bus, wider, NEW, rows)
        got = await read_topic(
            bus, topics.delivery("hrss", NEW), until=lambda r: len(r) >= 5, within=30
        )
        took = time.monotonic() - started
    key = wider.resources[NEW].key
    assert sorted(r.value[key] for r in got) == sorted(row[key] for row in rows)
    # well inside the consumer's own metadata refresh (minutes): the watch asked for it
    assert took < 15, f"the new resource's records took {took:.1f} s to be routed"

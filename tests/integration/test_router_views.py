"""What each consumer finds on its delivery topic: exactly its view, masked and filtered.

One router runs in this process for the whole module. Departments subscribe,
apply and approve through the Python API; the providers publish sample
records; the tests read ``gov.dlv.<consumer>.<resource>`` with the
subscriber's :class:`Reader` (view schema from the registry, never the
provider's) and compare with what was published. Expected values are
computed here, independently of the policy code.

Share types covered, at resource level and field level:

* business_licence, wholly 无条件共享: every field, bytes forwarded unchanged;
* birth_medical_certificate, mixed field by field: a subscriber without grant
  gets the unconditional fields; grantees get their granted fields, masked
  and filtered as approved; not-shared fields never;
* population_basic and minimum_living_allowance, 有条件共享 at resource level
  with a few unconditional fields: without grant only those, with a hashed
  Kafka key; with a grant, its fields, filtered on an enum / an int;
* death_registration, wholly 不予共享: denied, and no delivery topic at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from routing_support import (
    RouterRun,
    list_topics,
    publish,
    read_topic,
    running_router,
    wait_routed,
    wait_views,
)

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.reader import Received
from exchange.dev import sample
from exchange.errors import PermissionDenied
from exchange.router.backfill import BACKFILL

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
POP = "population_basic"
MLA = "minimum_living_allowance"
LICENCE = "business_licence"
DEATH = "death_registration"
N = 60

BMC_UNCONDITIONAL = [
    "certificate_no",
    "child_name",
    "gender",
    "birth_date",
    "hospital_name",
    "region_code",
    "issued_at",
]
POLICE_BMC_GRANT = ["mother_name", "mother_id_number", "father_id_number"]
CIVIL_BMC_GRANT = ["father_name", "father_id_number"]
HRSS_POP_GRANT = ["id_number", "name", "birth_date"]
HRSS_MLA_GRANT = ["household_size", "monthly_allowance"]
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def keep(text: str, first: int, last: int) -> str:
    return text[:first] + "*" * (len(text) - first - last) + text[len(text) - last :]


def ordered(catalog: Catalog, resource: str, names: list[str]) -> list[str]:
    return [n for n in catalog.resources[resource].field_names() if n in names]


@dataclass
class Scenario:
    catalog: Catalog
    published: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # res -> rid
    delivered: dict[tuple[str, str], list[Received]] = field(default_factory=dict)
    grants: dict[tuple[str, str], str] = field(default_factory=dict)
    death_denied: PermissionDenied | None = None

    def got(self, consumer: str, resource: str) -> list[Received]:
        return self.delivered[(consumer, resource)]

    def source(self, resource: str, rec: Received) -> dict[str, Any]:
        assert rec.record_id is not None
        return self.published[resource][rec.record_id]


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


def bmc_records(catalog: Catalog) -> list[dict[str, Any]]:
    recs = sample.generate(catalog.resources[BMC].schema_, N, seed=11)
    for i, rec in enumerate(recs):
        rec["certificate_no"] = f"V{i:05d}"
        rec["region_code"] = "330106" if i % 3 else "110105"  # 2/3 Zhejiang
        if i % 7 == 0:
            rec["father_name"] = None
            rec["father_id_number"] = None
    # two certificates naming the same father: a hash mask must give him one value
    recs[2]["father_id_number"] = recs[1]["father_id_number"] = "330106198801011234"
    recs[1]["father_name"] = recs[2]["father_name"] = "王大锤"
    return recs


@pytest.fixture(scope="module")
async def scenario(bus: Connection, loaded_catalog: Catalog, router: RouterRun) -> Scenario:
    catalog = loaded_catalog
    sc = Scenario(catalog)
    async with (
        Department(bus, "police") as police,
        Department(bus, "hrss") as hrss,
        Department(bus, "health") as health,
        Department(bus, "civil_affairs") as civil,
    ):
        await police.subscribe(LICENCE)
        await hrss.subscribe(BMC)
        await health.subscribe(POP)
        with pytest.raises(PermissionDenied) as denied:
            await police.subscribe(DEATH)
        sc.death_denied = denied.value

        app = await police.apply(
            BMC, fields=[*POLICE_BMC_GRANT, "address"], purpose="新生儿落户 registration"
        )
        sc.grants[("police", BMC)] = await health.approve(
            app,
            fields=POLICE_BMC_GRANT,  # narrowed: no address
            masks={"mother_id_number": "keep:6:4", "father_id_number": "hash"},
            row_filter='region_code.startsWith("33")',
        )
        app = await civil.apply(BMC, fields=CIVIL_BMC_GRANT, purpose="婚姻登记核验")
        sc.grants[("civil_affairs", BMC)] = await health.approve(
            app, masks={"father_id_number": "hash", "birth_date": "year"}
        )
        app = await hrss.apply(POP, fields=HRSS_POP_GRANT, purpose="参保登记 enrolment")
        sc.grants[("hrss", POP)] = await police.approve(
            app, masks={"name": "surname"}, row_filter='registration_status == "NORMAL"'
        )
        app = await hrss.apply(MLA, fields=HRSS_MLA_GRANT, purpose="就业救助 assistance")
        sc.grants[("hrss", MLA)] = await civil.approve(app, row_filter="household_size >= 3")

    await wait_views(
        router,
        BMC,
        {
            "hrss": BMC_UNCONDITIONAL,
            "police": BMC_UNCONDITIONAL + POLICE_BMC_GRANT,
            "civil_affairs": BMC_UNCONDITIONAL + CIVIL_BMC_GRANT,
        },
    )
    await wait_views(router, POP, {"health": ["region_code", "updated_at"]})
    await wait_views(router, MLA, {"hrss": ["region_code", "updated_at", *HRSS_MLA_GRANT]})
    await wait_views(router, LICENCE, {"police": catalog.resources[LICENCE].field_names()})

    to_publish = {
        BMC: bmc_records(catalog),
        POP: sample.generate(catalog.resources[POP].schema_, N, seed=12),
        MLA: sample.generate(catalog.resources[MLA].schema_, N, seed=13),
        LICENCE: sample.generate(catalog.resources[LICENCE].schema_, N, seed=14),
        DEATH: sample.generate(catalog.resources[DEATH].schema_, N, seed=15),
    }
    before = router.router.routed
    for resource, records in to_publish.items():
        ids = await publish(bus, catalog, resource, records)
        assert len(set(ids)) == len(records)
        sc.published[resource] = dict(zip(ids, records, strict=True))
    await wait_routed(router, before + sum(len(r) for r in to_publish.values()))

    expected = {
        ("police", LICENCE): N,
        ("hrss", BMC): N,
        ("police", BMC): sum(1 for r in to_publish[BMC] if r["region_code"].startswith("33")),
        ("civil_affairs", BMC): N,
        ("health", POP): N,
        ("hrss", POP): sum(1 for r in to_publish[POP] if r["registration_status"] == "NORMAL"),
        ("hrss", MLA): sum(1 for r in to_publish[MLA] if r["household_size"] >= 3),
    }
    # everything is routed and acknowledged: read what there is, then check the counts
    reads = await asyncio.gather(
        *(read_topic(bus, topics.delivery(c, r), idle=1.0) for c, r in expected)
    )
    for ((consumer, resource), count), got in zip(expected.items(), reads, strict=True):
        assert len(got) == count, f"{consumer}/{resource}: {len(got)} records, expected {count}"
        sc.delivered[(consumer, resource)] = got
    router.check_alive()
    return sc


# ------------------------------------------------------ resource level: 无条件共享


async def test_wholly_unconditional_resource_is_delivered_whole(scenario: Scenario) -> None:
    res = scenario.catalog.resources[LICENCE]
    got = scenario.got("police", LICENCE)
    assert {r.record_id for r in got} == set(scenario.published[LICENCE])
    for rec in got:
        assert rec.value == scenario.source(LICENCE, rec)  # every field, every value
        assert rec.schema_id == res.schema_id  # the source bytes, forwarded
        assert rec.key == rec.value["licence_no"]


# ----------------------------------------------------------- field level: mixed


async def test_subscriber_without_grant_gets_exactly_the_unconditional_fields(
    scenario: Scenario,
) -> None:
    got = scenario.got("hrss", BMC)
    assert {r.record_id for r in got} == set(scenario.published[BMC])  # no filter: every row
    for rec in got:
        src = scenario.source(BMC, rec)
        assert list(rec.value) == BMC_UNCONDITIONAL
        assert rec.value == {k: src[k] for k in BMC_UNCONDITIONAL}
        assert rec.key == src["certificate_no"]  # the key field is delivered: key in clear


async def test_grantee_gets_granted_fields_masked_and_filtered_as_approved(
    scenario: Scenario,
) -> None:
    got = scenario.got("police", BMC)
    expected_rows = {
        rid for rid, r in scenario.published[BMC].items() if r["region_code"].startswith("33")
    }
    assert {r.record_id for r in got} == expected_rows  # the CEL filter, exactly
    fields = ordered(scenario.catalog, BMC, BMC_UNCONDITIONAL + POLICE_BMC_GRANT)
    for rec in got:
        src = scenario.source(BMC, rec)
        assert list(rec.value) == fields  # no address (narrowed), no not-shared field
        for name in [*BMC_UNCONDITIONAL, "mother_name"]:
            assert rec.value[name] == src[name]
        masked = rec.value["mother_id_number"]
        assert masked == keep(src["mother_id_number"], 6, 4)
        assert masked == src["mother_id_number"][:6] + "*" * 8 + src["mother_id_number"][-4:]
        if src["father_id_number"] is None:
            assert rec.value["father_id_number"] is None  # null stays null under a mask
        else:
            assert HEX32.match(rec.value["father_id_number"])
            assert rec.value["father_id_number"] != src["father_id_number"]


async def test_hash_mask_is_stable_per_consumer_and_differs_between_consumers(
    scenario: Scenario,
) -> None:
    police = {
        scenario.source(BMC, r)["certificate_no"]: r.value for r in scenario.got("police", BMC)
    }
    civil = {
        scenario.source(BMC, r)["certificate_no"]: r.value
        for r in scenario.got("civil_affairs", BMC)
    }
    # V00001 and V00002 name the same father (both are Zhejiang rows)
    assert police["V00001"]["father_id_number"] == police["V00002"]["father_id_number"]
    assert civil["V00001"]["father_id_number"] == civil["V00002"]["father_id_number"]
    common = [c for c in police if police[c]["father_id_number"] is not None and c in civil]
    assert common
    for cert in common:
        assert police[cert]["father_id_number"] != civil[cert]["father_id_number"]


async def test_unconditional_field_masked_by_the_grant(scenario: Scenario) -> None:
    got = scenario.got("civil_affairs", BMC)
    fields = ordered(scenario.catalog, BMC, BMC_UNCONDITIONAL + CIVIL_BMC_GRANT)
    for rec in got:
        src = scenario.source(BMC, rec)
        assert list(rec.value) == fields
        assert rec.value["birth_date"] == f"{src['birth_date'].year:04d}"  # year only
        assert rec.value["father_name"] == src["father_name"]
        assert "mother_name" not in rec.value


async def test_view_schemas_on_the_bus_say_which_rule_masked_which_field(
    bus: Connection, scenario: Scenario
) -> None:
    registry = SchemaRegistry(bus)
    await registry.refresh()
    res = scenario.catalog.resources[BMC]
    police = registry.schema(scenario.got("police", BMC)[0].schema_id)
    docs = {f["name"]: (f["type"], f.get("doc", "")) for f in police["fields"]}
    assert docs["mother_id_number"][0] == "string"
    assert "keep:6:4" in docs["mother_id_number"][1]
    assert docs["father_id_number"][0] == ["null", "string"]
    assert "(hash)" in docs["father_id_number"][1]
    assert "masked" not in docs["mother_name"][1]
    # a view schema describes a shape, shared by every holder of that shape; which grant
    # a delivery was made under is in the audit log, not in the schema
    assert scenario.grants[("police", BMC)] not in police["doc"]
    assert "a view of birth_medical_certificate" in police["doc"]
    civil = registry.schema(scenario.got("civil_affairs", BMC)[0].schema_id)
    assert {f["name"]: f["type"] for f in civil["fields"]}["birth_date"] == "string"
    hrss = registry.schema(scenario.got("hrss", BMC)[0].schema_id)
    assert [f["name"] for f in hrss["fields"]] == BMC_UNCONDITIONAL
    assert {s["namespace"] for s in (police, civil, hrss)} == {"gov.exchange.view"}
    # three different shapes, three schemas
    assert (
        len({scenario.got(c, BMC)[0].schema_id for c in ("police", "civil_affairs", "hrss")}) == 3
    )
    assert res.schema_id not in {r.schema_id for r in scenario.got("hrss", BMC)}


# -------------------------------------------------- resource level: 有条件共享


async def test_conditional_resource_without_grant_gets_unconditional_fields_and_no_key(
    scenario: Scenario,
) -> None:
    got = scenario.got("health", POP)
    assert {r.record_id for r in got} == set(scenario.published[POP])
    keys = set()
    for rec in got:
        src = scenario.source(POP, rec)
        assert rec.value == {"region_code": src["region_code"], "updated_at": src["updated_at"]}
        # the Kafka key is the ID number, which health may not see: it is replaced
        assert rec.key is not None
        assert src["id_number"] not in rec.key
        assert HEX32.match(rec.key)
        keys.add(rec.key)
    assert len(keys) == len({r["id_number"] for r in scenario.published[POP].values()})


async def test_conditional_resource_with_grant_and_an_enum_row_filter(scenario: Scenario) -> None:
    got = scenario.got("hrss", POP)
    assert {r.record_id for r in got} == {
        rid for rid, r in scenario.published[POP].items() if r["registration_status"] == "NORMAL"
    }
    fields = ordered(scenario.catalog, POP, ["region_code", "updated_at", *HRSS_POP_GRANT])
    for rec in got:
        src = scenario.source(POP, rec)
        assert list(rec.value) == fields
        assert rec.value["id_number"] == src["id_number"]
        assert rec.value["birth_date"] == src["birth_date"]
        assert rec.value["name"] == src["name"][0] + "*" * (len(src["name"]) - 1)
        assert rec.key == src["id_number"]  # the key field is granted in clear


async def test_int_row_filter_and_decimal_fields(scenario: Scenario) -> None:
    got = scenario.got("hrss", MLA)
    assert {r.record_id for r in got} == {
        rid for rid, r in scenario.published[MLA].items() if r["household_size"] >= 3
    }
    for rec in got:
        src = scenario.source(MLA, rec)
        assert rec.value == {
            "household_size": src["household_size"],
            "region_code": src["region_code"],
            "monthly_allowance": src["monthly_allowance"],
            "updated_at": src["updated_at"],
        }
        assert rec.value["household_size"] >= 3
        assert rec.key is not None
        assert rec.key != src["certificate_no"]  # certificate_no is not granted


# ------------------------------------------------------- resource level: 不予共享


async def test_wholly_not_shared_resource_is_denied_and_never_delivered(
    bus: Connection, scenario: Scenario
) -> None:
    denied = scenario.death_denied
    assert denied is not None
    assert "不予共享" in str(denied)
    assert denied.rule is not None
    assert "不予共享" in denied.rule
    delivery = {t for t in await list_topics(bus) if t.startswith("gov.dlv.")}
    assert not {t for t in delivery if t.endswith(f".{DEATH}")}, delivery
    # the provider reads its source topic; the router makes it no delivery topic
    assert not {t for t in delivery if t.startswith("gov.dlv.health.") and t.endswith(BMC)}


async def test_deliveries_happen_in_the_background_without_restart(
    bus: Connection, scenario: Scenario, router: RouterRun
) -> None:
    """A grant approved now, while the router runs, applies to the next records.

    Before them comes the current state (全量: the backfill, marked by its header).
    """
    async with (
        Department(bus, "market") as market,
        Department(bus, "health") as health,
    ):
        app = await market.apply(BMC, fields=["address"], purpose="住所核验")
        await health.approve(app, until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    await wait_views(router, BMC, {"market": [*BMC_UNCONDITIONAL, "address"]})
    recs = bmc_records(scenario.catalog)[:5]
    for i, rec in enumerate(recs):
        rec["certificate_no"] = f"M{i:05d}"
    await publish(bus, scenario.catalog, BMC, recs)
    got = await read_topic(
        bus,
        topics.delivery("market", BMC),
        until=lambda out: sum(BACKFILL not in r.headers for r in out) >= 5,
        within=20,
    )
    live = [r for r in got if BACKFILL not in r.headers]
    assert sorted(r.value["certificate_no"] for r in live) == [f"M{i:05d}" for i in range(5)]
    assert all(r.value["address"] == recs[int(r.key[1:])]["address"] for r in live if r.key)
    backfilled = {r.value["certificate_no"] for r in got if BACKFILL in r.headers}
    assert backfilled == {r["certificate_no"] for r in scenario.published[BMC].values()}

"""Signed commands on the real broker: impersonating a department fails, even unauthenticated."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control import catalog_store, state
from exchange.control.state import GRANT_CODEC
from exchange.errors import CommandRefused
from exchange.sharing.records import EventKind, GrantEvent

BMC = "birth_medical_certificate"


@pytest.fixture(scope="module")
def keys() -> dict[str, Ed25519PrivateKey]:
    return {d: Ed25519PrivateKey.generate() for d in ("police", "health")}


@pytest.fixture(scope="module")
async def keyed_catalog(
    bus: Connection, sample_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> Catalog:
    depts = dict(sample_catalog.departments)
    for d, k in keys.items():
        depts[d] = depts[d].model_copy(update={"public_key": signing.public_key_of(k)})
    catalog = sample_catalog.model_copy(update={"departments": depts})
    await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")
    return catalog


async def test_only_the_holder_of_the_providers_key_can_approve(
    bus: Connection, keyed_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    async with Department(bus, "police", signing_key=keys["police"]) as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="落户 registration")
    # police claims to be health, signing with its own key
    async with Department(bus, "health", signing_key=keys["police"]) as impostor:
        with pytest.raises(CommandRefused, match="does not verify"):
            await impostor.approve(app)
    # health's name without health's key
    async with Department(bus, "health") as unsigned:
        with pytest.raises(CommandRefused, match="no signature"):
            await unsigned.approve(app)
    after = await state.load(bus)
    assert not any(g.application_id == app for g in after.book.grants.values())
    async with Department(bus, "health", signing_key=keys["health"]) as health:
        grant = await health.approve(app)
    after = await state.load(bus)
    assert after.book.grants[grant].consumer == "police"


async def test_a_forged_event_written_to_the_topic_is_refused_by_every_reader(
    bus: Connection, keyed_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    async with Department(bus, "police", signing_key=keys["police"]) as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="落户 registration")
    forged = GrantEvent(
        kind=EventKind.APPROVED,
        actor="health",
        consumer="police",
        resource=BMC,
        application_id=app,
        grant_id="GR-FORGED",
        fields=("mother_name",),
    )
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(
            topics.GRANTS, key=BMC.encode(), value=GRANT_CODEC.encode(forged.to_avro())
        )
    after = await state.load(bus)
    assert "GR-FORGED" not in after.book.grants
    assert "not signed with 'health'" in after.book.refused[forged.event_id]

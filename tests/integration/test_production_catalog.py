"""Production is strict: outside the embedded development broker, a catalog that does not
require signatures is refused at load unless an override says why (issue 23 item 2).

The production path is taken on either lane with the module's broker reached
as a non-development connection (on the Kafka lane ``bus`` is one already).
"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.log import entries_only, read_log
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.errors import CommandRefused

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def production(bus: Connection) -> Connection:
    return dataclasses.replace(bus, development=False)


async def _audit(bus: Connection) -> list[AuditEntry]:
    return [e for _, e in entries_only(await read_log(bus))]


async def test_an_unsigned_catalog_is_refused_then_loaded_by_an_audited_override(
    production: Connection, sample_catalog: Catalog
) -> None:
    assert not sample_catalog.signatures_required
    with pytest.raises(CommandRefused, match="does not set signatures_required: true") as caught:
        await catalog_store.load(production, sample_catalog, actor="ops")
    assert "--allow-unsigned" in str(caught.value)  # says how
    assert await catalog_store.current(production) is None  # nothing loaded
    assert not await kafka.read_to_end(production, topics.CATALOG)
    refused = [e for e in await _audit(production) if e.action is Action.COMMAND_REFUSED]
    assert [(e.actor, e.details["command"]) for e in refused] == [("ops", "catalog load")]
    assert "signatures_required" in (refused[0].reason or "")

    reason = "migration week: departments register their keys by Friday"
    change = await catalog_store.load(
        production, sample_catalog, actor="ops", unsigned_override=reason
    )
    assert change.version == 1
    changed = [e for e in await _audit(production) if e.action is Action.CATALOG_CHANGED]
    assert [e.details.get("unsigned_override") for e in changed] == [reason]
    assert changed[0].details["signatures_required"] == "false"


async def test_a_catalog_requiring_signatures_loads_without_an_override(
    production: Connection, sample_catalog: Catalog
) -> None:
    keys = {d: Ed25519PrivateKey.generate() for d in sample_catalog.departments}
    strict = sample_catalog.with_keys(
        {d: signing.public_key_of(k) for d, k in keys.items()},
        admins={"health"},
        signatures_required=True,
    )
    change = await catalog_store.load(
        production, strict, actor="health", signing_key=keys["health"]
    )
    in_force = await catalog_store.current(production)
    assert in_force is not None
    assert in_force.version == change.version
    assert in_force.catalog.signatures_required
    last = [e for e in await _audit(production) if e.action is Action.CATALOG_CHANGED][-1]
    assert "unsigned_override" not in last.details
    assert last.details["signatures_required"] == "true"

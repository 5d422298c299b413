"""Fail closed on a control-state reset: the router pauses, rebuilds from the topics, resumes.

A router routes birth certificates to police under an approved grant
(``mother_name``, a conditional field). Then the control topics go backwards
under it: deleted and created again with the catalog but without the grant
(both engines), or ``gov.ctl.grants`` truncated with DeleteRecords (Apache
Kafka only). The router must stop routing (no record delivered under the
vanished grant, none committed), say so (an ERROR naming the topic, the
reset counter, the paused gauge), rebuild its state from the topics, and
route again under the new state, auditing the reset. A department session
opened before the reset refuses to act on it. Figures printed (run with -s).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from routing_support import RouterRun, publish, read_raw, running_router, wait_for, wait_routed

from exchange.audit.entry import Action, AuditEntry
from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control import catalog_store
from exchange.dev import sample
from exchange.errors import ControlStateReset

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
DLV = topics.delivery("police", BMC)
N = 20  # records per phase
RESET = "gov_exchange_control_reset_total"


def certificates(catalog: Catalog, prefix: str) -> list[dict[str, Any]]:
    recs = sample.generate(catalog.resources[BMC].schema_, N, seed=11)
    return [{**r, "certificate_no": f"{prefix}{i:05d}"} for i, r in enumerate(recs)]


async def granted_router(bus: Connection, run: RouterRun, catalog: Catalog) -> int:
    """Police gets mother_name under a grant; N records delivered; the grant view's schema id."""
    async with Department(bus, "police") as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="落户")
    async with Department(bus, "health") as health:
        await health.approve(app)

    def granted_view() -> bool:
        view = run.views(BMC).get("police")
        return view is not None and "mother_name" in view.view.fields

    await wait_for(
        granted_view,
        within=15,
        what="police's view with mother_name",
    )
    granted = run.views(BMC)["police"].schema_id
    await publish(bus, catalog, BMC, certificates(catalog, "A"))
    await wait_routed(run, N)
    return granted


async def delivered_under(bus: Connection, schema_id: int) -> set[str]:
    """Keys of the records on police's delivery topic framed with ``schema_id``."""
    out = set()
    for rec in await read_raw(bus, DLV):
        if rec.value is not None and wire.unframe(rec.value)[0] == schema_id:
            out.add(rec.key.decode() if rec.key else "")
    return out


async def reload_catalog(bus: Connection, catalog: Catalog) -> None:
    """The control topics created again, and the catalog loaded on them."""
    await kafka.ensure_control_topics(bus)
    await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")


def resets(run: RouterRun, topic: str) -> float:
    return run.router.metrics.registry.get_sample_value(RESET, {"topic": topic}) or 0.0


async def reset_audited(bus: Connection) -> list[AuditEntry]:
    entries = [AuditEntry.decode(r.value) for r in await kafka.read_to_end(bus, topics.AUDIT)]
    return [e for e in entries if e.action is Action.CATALOG_CHANGED and e.decision == "reset"]


async def test_recreated_control_topics_pause_then_rebuild(
    bus: Connection, loaded_catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="exchange.router.loop")
    async with running_router(bus) as run:
        granted = await granted_router(bus, run, loaded_catalog)
        assert len(await delivered_under(bus, granted)) == N
        session = Department(bus, "police")
        await session.start()  # a session opened before the reset
        reloaded: float | None = None
        try:
            began = time.monotonic()
            async with kafka.admin(bus) as admin:
                await admin.delete_topics(
                    [topics.SCHEMAS, topics.CATALOG, topics.GRANTS, topics.BOOK, topics.AUDIT]
                )
            await wait_for(lambda: run.router.paused, within=10, what="routing paused")
            to_pause = time.monotonic() - began
            assert run.router.metrics.routing_paused._value.get() == 1
            # published while paused: routed only after the rebuild, under the new state
            await publish(bus, loaded_catalog, BMC, certificates(loaded_catalog, "B"))
            await reload_catalog(bus, loaded_catalog)
            reloaded = time.monotonic()
            await wait_for(lambda: not run.router.paused, within=20, what="routing resumed")
            to_resume = time.monotonic() - reloaded
            await publish(bus, loaded_catalog, BMC, certificates(loaded_catalog, "C"))
            await wait_routed(run, 3 * N)
            assert run.router.metrics.routing_paused._value.get() == 0
            assert (
                resets(run, topics.SCHEMAS)
                + resets(run, topics.CATALOG)
                + resets(run, topics.GRANTS)
                == 1
            )
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert any("control state reset" in m and "gov.ctl." in m for m in errors), errors
            under_grant = await delivered_under(bus, granted)
            late = sorted(k for k in under_grant if not k.startswith("A"))
            assert late == [], f"{len(late)} records delivered under the vanished grant"
            assert "police" not in run.views(BMC) or "mother_name" not in (
                run.views(BMC)["police"].view.fields
            )
            audited = await reset_audited(bus)
            assert len(audited) == 1
            assert audited[0].details["kind"] in ("deleted", "recreated")
            with pytest.raises(ControlStateReset, match="refuses to act"):
                await session.apply(BMC, fields=["mother_name"], purpose="落户")
        finally:
            await session.stop()
            if reloaded is None:  # failed half-way: the module's next test needs a catalog
                await reload_catalog(bus, loaded_catalog)
        print(
            f"\nreset found {to_pause:.2f} s after the topics were deleted "
            f"({audited[0].details['kind']}: {audited[0].reason}); routing resumed "
            f"{to_resume:.2f} s after the catalog was loaded again; 0 of {2 * N} later "
            f"records delivered under the vanished grant; {3 * N} routed in all"
        )


@pytest.mark.kafka_only(
    "the embedded broker (Tansu 0.6) does not implement DeleteRecords: it closes the connection"
)
# the router's stop after this reset waits out LeaveGroup request timeouts on Kafka (a known
# defect, issue 14): the test's own checks take about 10 s
@pytest.mark.timeout(300)
async def test_truncated_grants_pause_then_rebuild(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    from aiokafka import TopicPartition
    from aiokafka.admin import RecordsToDelete

    async with running_router(bus) as run:
        granted = await granted_router(bus, run, loaded_catalog)
        routed = run.router.routed
        tp = TopicPartition(topics.GRANTS, 0)
        end = run.router.state.positions[topics.GRANTS]
        began = time.monotonic()
        async with kafka.admin(bus) as admin:
            await admin.delete_records({tp: RecordsToDelete(before_offset=end)})
        await wait_for(lambda: resets(run, topics.GRANTS) == 1, within=10, what="reset found")
        to_pause = time.monotonic() - began
        await wait_for(lambda: not run.router.paused, within=20, what="routing resumed")
        to_resume = time.monotonic() - began
        assert "police" not in run.views(BMC) or "mother_name" not in (
            run.views(BMC)["police"].view.fields
        )
        await publish(bus, loaded_catalog, BMC, certificates(loaded_catalog, "D"))
        await wait_routed(run, routed + N)
        # records published before the truncation (this module's earlier phases) may reach
        # police under the grant by its backfill (全量); none published after it may
        late = sorted(k for k in await delivered_under(bus, granted) if k.startswith("D"))
        assert late == [], f"{len(late)} records delivered under the truncated grant"
        audited = await reset_audited(bus)
        assert [e.details["kind"] for e in audited][-1:] == ["truncated"]
        print(
            f"\ngov.ctl.grants truncated to offset {end}: reset found after {to_pause:.2f} s, "
            f"routing resumed after {to_resume:.2f} s with "
            f"{len(run.router.state.book.grants)} grants; 0 records under the old grant"
        )

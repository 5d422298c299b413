"""Leaving a view when a grant narrows, and filter membership across a router restart.

Health publishes birth certificates (birth_medical_certificate). market holds
a grant with a row filter (Zhejiang) that a new approval narrows to Hangzhou:
the records of the rest of Zhejiang it held are deleted for it (left-view) on
its delivery topic and in its PostgreSQL sink table; the Hangzhou ones stay,
and a record it never held gets nothing. civil_affairs holds a grant without a
row filter that a new approval narrows to Hangzhou: everything outside
Hangzhou leaves its view, the Beijing record too. police holds a grant with a row filter
(Zhejiang, the key in clear): after its router restarts, the deletion of a key
delivered before the restart and a record moving out of the filter reach it,
and the deletion of a key it never held does not. hrss's narrowing is cut short by
a router restart: the router that resumes it still deletes every row leaving.

Each test uses certificate numbers of its own (a prefix); the module has its
own bus.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deletion_support import (
    BMC,
    CANARY,
    ZJ,
    audit_entries,
    canary_free,
    certificates,
    deletions,
    pg,
    sink,
    step_until,
)
from routing_support import (
    RouterRun,
    publish,
    read_topic,
    running_router,
    start_router,
    wait_for,
    wait_routed,
)

from exchange.audit.entry import Action
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Received
from exchange.dev.databases import ThrowawayPostgres
from exchange.router.backfill import BACKFILL
from exchange.router.backfill_state import BackfillBook

pytestmark = pytest.mark.integration

HANGZHOU = 'region_code.startsWith("3301")'


@pytest.fixture
def pg_schema(postgres_server: ThrowawayPostgres) -> Iterator[str]:
    name = f"mem_{uuid.uuid4().hex[:12]}"
    pg(postgres_server.dsn, f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        pg(postgres_server.dsn, f'DROP SCHEMA "{name}" CASCADE')


async def grant(bus: Connection, run: RouterRun, consumer: str, row_filter: str | None) -> str:
    """A grant of mother_name with ``row_filter`` to ``consumer``; waits for its view."""
    async with Department(bus, consumer) as c, Department(bus, "health") as health:
        app = await c.apply(BMC, fields=["mother_name"], purpose="新生儿落户 registration")
        grant_id = await health.approve(app, row_filter=row_filter)
    await wait_for(
        lambda: (
            consumer in run.views(BMC)
            and run.views(BMC)[consumer].view.grant_id == grant_id
            and not run.router.view_table.stale
        ),
        within=15,
        what=f"{consumer}'s view under grant {grant_id}",
    )
    return grant_id


def received(events: list[Any], key: str) -> list[Received]:
    return [e for e in events if isinstance(e, Received) and e.key == key]


@pytest.mark.parametrize(
    ("consumer", "before"),
    [("market", ZJ), ("civil_affairs", None)],
    ids=["zhejiang-to-hangzhou", "everything-to-hangzhou"],
)
async def test_a_narrowed_grant_deletes_the_rows_leaving_its_filter_and_only_those(
    bus: Connection,
    loaded_catalog: Catalog,
    tmp_path: Path,
    postgres_server: ThrowawayPostgres,
    pg_schema: str,
    consumer: str,
    before: str | None,
) -> None:
    prefix = f"N{uuid.uuid4().hex[:6]}"
    hangzhou = certificates(loaded_catalog, prefix + "H", 3, region="330106")
    ningbo = certificates(loaded_catalog, prefix + "N", 3, region="330206")
    beijing = certificates(loaded_catalog, prefix + "B", 1, region="110105")
    inside = {r["certificate_no"] for r in hangzhou}
    never = beijing[0]["certificate_no"]  # held only by a view without a filter
    leaving = {r["certificate_no"] for r in ningbo} | ({never} if before is None else set())
    table = f"{pg_schema}.{consumer}_births"

    def rows() -> set[str]:
        found = pg(
            postgres_server.dsn,
            f"SELECT gov_key FROM {table} WHERE gov_key LIKE %s",
            (prefix + "%",),
        )
        return {r[0] for r in found}

    async with running_router(bus) as run:
        await grant(bus, run, consumer, before)
        await publish(bus, loaded_catalog, BMC, hangzhou + ningbo + beijing)
        await wait_routed(run, 7)
        rows_sink = await sink(
            bus, tmp_path, postgres_server, department=consumer, resource=BMC, table=table
        )
        async with rows_sink:
            await step_until(rows_sink, lambda: rows() == inside | leaving)
            narrowed = await grant(bus, run, consumer, HANGZHOU)  # supersedes the first
            await step_until(rows_sink, lambda: rows() == inside)
            # the Beijing record moves into the new filter: delivered again (and, under a
            # filter before, never deleted: it was never held)
            await publish(bus, loaded_catalog, BMC, [{**beijing[0], "region_code": "330108"}])
            await step_until(rows_sink, lambda: rows() == inside | {never})

        def complete(got: list[Any]) -> bool:
            return (
                deletions(got, leaving).keys() == leaving
                # the narrowed view's backfill gave the Hangzhou records again: a key is
                # either given or deleted in it, so these were not deleted
                and all(any(BACKFILL in e.headers for e in received(got, k)) for k in inside)
                and any(e.value["region_code"] == "330108" for e in received(got, never))
            )

        events = await read_topic(
            bus, topics.delivery(consumer, BMC), until=complete, within=30, dedup=False
        )
    gone = deletions(events, leaving | inside | {never})
    assert gone.keys() == leaving
    assert {d.reason for d in gone.values()} == {"left-view"}
    # the narrowing's progress names the filter before it: a router resuming it after a
    # crash knows which keys the consumer still holds
    book = BackfillBook(bus, follow=False)
    await book.start()
    await book.stop()
    narrowing = [p for p in book.of_view(consumer, BMC) if p.grant_id == narrowed]
    assert narrowing
    assert {p.narrowed_from for p in narrowing} == {before or "true"}

    # exactly the keys leaving, by their hashes (a view without a filter held earlier
    # tests' keys too, so counts say nothing)
    hasher = run.router.key_hasher
    expected = {hasher.digest(BMC, k.encode()) for k in leaving}
    ours = {hasher.digest(BMC, k.encode()) for k in leaving | inside}

    def hashes(es: list[Any]) -> set[str]:
        found = [e.details["key_hashes"].split(",") for e in es if e.grant_id == narrowed]
        return {h.split(":")[0] for hs in found for h in hs}

    entries = await audit_entries(bus, Action.RECORD_LEFT_VIEW, lambda es: hashes(es) >= expected)
    mine = [e for e in entries if e.grant_id == narrowed]
    assert hashes(mine) & ours == expected
    assert {e.consumer for e in mine} == {consumer}
    assert all(e.details["kind"] == "narrowed" and e.details["backfill"] for e in mine)
    assert all(e.details["row_filter"] == HANGZHOU for e in mine)
    canary_free(mine, CANARY, *leaving, *inside)


async def test_after_a_restart_deletions_reach_a_filtered_view_for_the_keys_it_held_only(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    prefix = f"R{uuid.uuid4().hex[:6]}"
    held = certificates(loaded_catalog, prefix + "Z", 3, region="330106")
    outside = certificates(loaded_catalog, prefix + "B", 1, region="110105")
    deleted, moved, kept = (r["certificate_no"] for r in held)
    never = outside[0]["certificate_no"]
    group = f"test-router-{uuid.uuid4().hex[:8]}"

    first = await start_router(bus, group=group)
    try:
        await grant(bus, first, "police", ZJ)
        await publish(bus, loaded_catalog, BMC, held + outside)
        await wait_routed(first, 4)
    finally:
        await first.stop()

    # while no router runs: a deletion of a key police held and of one it never held, a
    # record moving out of its filter, then the key never held comes into the filter
    async with Publisher(bus, loaded_catalog, "health") as pub:
        await pub.delete(BMC, [deleted, never])
    await publish(bus, loaded_catalog, BMC, [{**held[1], "region_code": "110105"}])
    await publish(bus, loaded_catalog, BMC, [{**outside[0], "region_code": "330106"}])

    async with running_router(bus, group=group) as second:  # resumes where the first ended
        await wait_routed(second, 4)

        def complete(got: list[Any]) -> bool:
            # the key never held arrives after its deletion (same key, same partition): once
            # it is here, a deletion of it would be here too. The key kept is waited for as
            # well: the read ends as soon as this holds, and its partition may be read last
            # (it was, once, on the Kafka lane: the assertion on it below then failed)
            return (
                deletions(got, {deleted, moved}).keys() == {deleted, moved}
                and bool(received(got, never))
                and bool(received(got, kept))
            )

        events = await read_topic(bus, topics.delivery("police", BMC), until=complete, within=30)
    gone = deletions(events, {deleted, moved, kept, never})
    assert {k: d.reason for k, d in gone.items()} == {deleted: "deleted", moved: "left-view"}
    assert received(events, kept)  # delivered before the restart, still held


async def test_a_narrowing_cut_short_by_a_restart_still_deletes_every_row_leaving(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    prefix = f"C{uuid.uuid4().hex[:6]}"
    recs = certificates(loaded_catalog, prefix, 200)
    for i, rec in enumerate(recs):
        rec["region_code"] = "330106" if i % 2 == 0 else "330206"  # Hangzhou, Ningbo
    inside = {r["certificate_no"] for r in recs if r["region_code"] == "330106"}
    leaving = {r["certificate_no"] for r in recs} - inside
    group = f"test-router-{uuid.uuid4().hex[:8]}"

    first = await start_router(bus, group=group, backfill_chunk=1)  # one key a round
    try:
        await grant(bus, first, "hrss", ZJ)
        await publish(bus, loaded_catalog, BMC, recs)
        await wait_routed(first, len(recs))
        narrowed = await grant(bus, first, "hrss", HANGZHOU)
        backfiller = first.router.backfiller
        assert backfiller is not None

        def begun() -> bool:
            job = backfiller.jobs.get(("hrss", BMC))
            return job is not None and any(p.delivered for p in job.scan.parts.values())

        await wait_for(begun, within=15, what="the narrowing's first chunk", interval=0.001)
        job = backfiller.jobs[("hrss", BMC)]
    finally:
        await first.stop()
    assert not all(p.done for p in job.scan.parts.values())  # cut short: the premise

    async with running_router(bus, group=group) as second:  # resumes the narrowing

        def complete(got: list[Any]) -> bool:
            # every Hangzhou record given again by the narrowing (before or after the
            # restart): a key is either given or deleted in it, so none was deleted
            return deletions(got, leaving).keys() == leaving and all(
                any(e.headers.get(BACKFILL) == job.id for e in received(got, k)) for k in inside
            )

        events = await read_topic(
            bus, topics.delivery("hrss", BMC), until=complete, within=40, dedup=False
        )
        book = BackfillBook(bus, follow=False)
        await book.start()
        await book.stop()
        second.check_alive()
    assert not deletions(events, inside)
    resumed = [p for p in book.of_view("hrss", BMC) if p.grant_id == narrowed]
    assert {p.job for p in resumed} == {job.id}  # the same backfill, resumed

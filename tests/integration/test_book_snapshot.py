"""Sessions start from the routers' grant book snapshot, not from the whole history.

A router writes its book to ``gov.ctl.book``; a department session then
replays only the events after it, and ends with the same book as a full
replay. Snapshots that are damaged, made under another catalog or past the
end of ``gov.ctl.grants`` are not used, and a router never reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from routing_support import RouterRun, running_router

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control import book_snapshot, state
from exchange.control.state import GRANT_CODEC
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import EventKind, Grant, GrantEvent

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
HISTORY = 400  # applications written before the session starts


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with kafka.producer(bus, linger_ms=20) as producer:
        for n in range(HISTORY):
            ev = GrantEvent(
                kind=EventKind.APPLIED,
                actor="police",
                consumer="police",
                resource=BMC,
                application_id=f"APP-HISTORY-{n:05d}",
                fields=("mother_name",),
                purpose="history",
            )
            await producer.send(topics.GRANTS, value=GRANT_CODEC.encode(ev.to_avro()))
        await producer.flush()
    async with running_router(bus) as run:
        yield run


def state_of(book: GrantBook) -> tuple[Any, ...]:
    return (book.applications, book.grants, book.subscriptions, book.accepted, book.current)


async def _snapshot_covering(bus: Connection, offset: int) -> None:
    async def covered() -> bool:
        records = await kafka.read_to_end(bus, topics.BOOK)
        return any(book_snapshot.decode(r.value).grants_offset >= offset for r in records)

    for _ in range(100):
        if await covered():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no grant book snapshot covering offset {offset} within 10 s")


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the grant events applied by any book in this process, from now on."""
    seen: list[str] = []
    original = GrantBook.apply

    def counting(self: GrantBook, ev: GrantEvent, catalog: Catalog, **kw: Any) -> str | None:
        seen.append(ev.event_id)
        return original(self, ev, catalog, **kw)

    monkeypatch.setattr(GrantBook, "apply", counting)
    return seen


async def test_a_session_replays_only_what_follows_the_snapshot(
    bus: Connection, router: RouterRun, applied: list[str]
) -> None:
    end = router.router.state.positions[topics.GRANTS]
    await _snapshot_covering(bus, end)
    applied.clear()
    async with Department(bus, "police") as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="after the snapshot")
        assert app in police.state.book.applications
        assert len(police.state.book.applications) > HISTORY
        session = state_of(police.state.book)
    assert len(applied) < 10, f"the session applied {len(applied)} events, not the tail"
    full = await state.load(bus, from_snapshot=False)
    assert state_of(full.book) == session


async def _write_book(bus: Connection, value: bytes) -> None:
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(topics.BOOK, key=b"book", value=value)


def _forged(loaded: state.ControlState, **changes: Any) -> bytes:
    """The book of ``loaded`` with a grant of police's ID numbers nobody approved."""
    assert loaded.snapshot is not None
    book = loaded.book
    forged = GrantBook()
    forged.subscriptions, forged.refused = set(book.subscriptions), dict(book.refused)
    forged.applications, forged.accepted = dict(book.applications), set(book.accepted)
    forged.grants = dict(book.grants)
    forged.grants["GR-FORGED"] = Grant(
        id="GR-FORGED",
        application_id="APP-HISTORY-00000",
        consumer="police",
        resource=BMC,
        fields=("mother_id_number",),
        purpose="forged",
        row_filter=None,
        masks={},
        valid_until=None,
        approved_at=loaded.snapshot.loaded_at,
    )
    forged.current = {**book.current, ("police", BMC): "GR-FORGED"}
    args: dict[str, Any] = {
        "grants_offset": loaded.positions[topics.GRANTS],
        "catalog_version": loaded.snapshot.version,
        "catalog_digest": loaded.snapshot.digest,
        **changes,
    }
    return book_snapshot.encode(forged, writer="forger", **args)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param({"catalog_digest": "0" * 64}, id="another-catalog"),
        pytest.param({"grants_offset": 10**9}, id="past-the-end"),
        pytest.param({}, id="digest-broken"),
    ],
)
async def test_unusable_snapshots_are_not_used(
    bus: Connection, router: RouterRun, damage: dict[str, Any]
) -> None:
    loaded = await state.load(bus, from_snapshot=False)
    value = _forged(loaded, **damage)
    if not damage:  # flip a byte of the compressed book: the digest no longer matches
        value = value[:-3] + bytes([value[-3] ^ 0xFF]) + value[-2:]
    await _write_book(bus, value)
    session = await state.load(bus)
    assert "GR-FORGED" not in session.book.grants
    assert state_of(session.book) == state_of(loaded.book)


async def test_a_router_never_takes_a_forged_snapshot(
    bus: Connection, router: RouterRun, loaded_catalog: Catalog
) -> None:
    loaded = await state.load(bus, from_snapshot=False)
    await _write_book(bus, _forged(loaded))
    async with running_router(bus) as fresh:
        book = fresh.router.state.book
        assert "GR-FORGED" not in book.grants
        assert book.latest_grant("police", BMC) is None

"""Snapshots of the grant book on ``gov.ctl.book``, so a session need not replay all history.

A department session (every CLI command, :class:`exchange.clients.department.Department`)
used to replay ``gov.ctl.grants`` from the beginning on start: its latency
grew with the history. Routers replay the whole history anyway; every few
seconds, when their book changed, they write it here as one record: the book
as it stands after ``gov.ctl.grants`` offset ``grants_offset - 1``, and the
catalog (version and digest) it was checked against. A session reads only
the last snapshot and replays the events after it, each checked as before.

Correct under concurrent writers: the book after offset N is the same in
every process that replayed the topic under the same catalog (replay is
deterministic), so two routers write the same snapshot for the same offset,
and a reader may take whichever came last. A snapshot made under another
catalog than the one in force, that does not decode, or whose digest does
not match its content is not used (the session replays everything instead);
nor is one made from another incarnation of ``gov.ctl.grants`` (another topic
id: the topic was recreated) or from a replay that began at another log start
(the topic was truncated): its book may hold grants that no longer exist.

Trust: a snapshot is a cache for sessions, never a source of truth for
delivery. Routers never read it: they replay and check every event, so a
snapshot forged onto the topic cannot make any record reach anyone, and a
command it wrongly let through is refused (and audited) by every router.
What a forged snapshot can do is mislead a session (say, refuse a command
or explain a view wrongly); so only the router principal may write the
topic (``exchange acls``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from exchange.avro import schema as avro
from exchange.avro.control_records import ControlCodec
from exchange.errors import DecodeError
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import Application, AppStatus, Grant, GrantKind
from exchange.sharing.stages import Stage, Step

BOOK_SNAPSHOT_V1: avro.Schema = {
    "type": "record",
    "name": "GrantBookSnapshot",
    "namespace": "gov.exchange.control",
    "doc": "授权簿快照 The grant book after a point of gov.ctl.grants, for sessions to start from.",
    "fields": [
        {
            "name": "grants_offset",
            "type": "long",
            "doc": "the next offset of gov.ctl.grants to replay after this book",
        },
        {"name": "catalog_version", "type": "int", "doc": "catalog the events were checked under"},
        {"name": "catalog_digest", "type": "string", "doc": "its SHA-256"},
        {"name": "written_by", "type": "string", "doc": "router instance that wrote it"},
        {"name": "digest", "type": "string", "doc": "SHA-256 of book"},
        {"name": "book", "type": "bytes", "doc": "the book as zlib-compressed JSON"},
    ],
}
#: V1 and the topic whose replay it is: snapshots of a recreated or truncated topic are not used
BOOK_SNAPSHOT: avro.Schema = {
    **BOOK_SNAPSHOT_V1,
    "fields": [
        *BOOK_SNAPSHOT_V1["fields"],
        {
            "name": "grants_topic_id",
            "type": "string",
            "default": "",
            "doc": "topic id of the gov.ctl.grants replayed ('' if the broker reports none)",
        },
        {
            "name": "grants_from",
            "type": "long",
            "default": 0,
            "doc": "the log start offset of gov.ctl.grants the replay began at",
        },
    ],
}
CODEC = ControlCodec(BOOK_SNAPSHOT, older=(BOOK_SNAPSHOT_V1,))
EVERY_S = 2.0  # a changed book is written at most this often (by exchange.router.book_writer)


@dataclass(frozen=True)
class BookSnapshot:
    grants_offset: int
    catalog_version: int
    catalog_digest: str
    book: GrantBook
    grants_topic_id: str = ""
    grants_from: int = 0


def _ms(t: dt.datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


_TIMES = {
    "applied_at",
    "answered_at",
    "valid_until",
    "approved_at",
    "revoked_at",
}


_FIELDS = {cls: {f.name for f in fields(cls)} for cls in (Application, Grant)}
_NAMES = {cls: [f.name for f in fields(cls)] for cls in (Application, Grant)}


def _plain(obj: Any) -> dict[str, Any]:
    """The fields of a grant or application as JSON-ready values (shallow: faster than
    ``asdict``, which copies every nested value first); times as epoch milliseconds, an
    application's path as compact rows."""
    d = {k: getattr(obj, k) for k in _NAMES[type(obj)]}
    for k in _TIMES.intersection(d):
        d[k] = _ms(d[k])
    if "steps" in d:
        d["steps"] = [s.to_plain() for s in d["steps"]]
    return d


def _table(cls: Any, objs: Iterable[Any]) -> dict[str, Any]:
    """Records of one class as a table: the field names once, then a row of values each.

    A third smaller than one JSON object per record (the names are not repeated),
    and so faster to parse for every session that starts from the snapshot.
    """
    columns = [f.name for f in fields(cls)]
    return {"columns": columns, "rows": [list(_plain(o).values()) for o in objs]}


def _records(cls: Any, table: Any) -> Iterator[Any]:
    """The records of a :func:`_table` (format 2), or of a list of objects (format 1)."""
    if isinstance(table, list):
        for d in table:
            yield _revive(cls, d)
        return
    columns = table["columns"]
    for row in table["rows"]:
        yield _revive(cls, dict(zip(columns, row, strict=True)))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: (field, value -> member) of the enumerations a grant or application holds
_ENUMS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("status", {m.value: m for m in AppStatus}),
    ("kind", {m.value: m for m in GrantKind}),
    ("stage", {m.value: m for m in Stage}),
)


def _revive(cls: Any, d: dict[str, Any]) -> Any:
    """The record ``d`` describes, with its times and tuples back.

    A session revives every grant and application of the book on start, so this is
    the fast way: a ``d`` with exactly the fields of ``cls`` fills a new instance
    directly, without the frozen dataclass's ``__init__`` (one ``object.__setattr__``
    per field); any other ``d`` goes through ``cls(**d)``, which refuses unknown fields.
    """
    for k in _TIMES.intersection(d):
        ms = d[k]
        if ms is not None:
            d[k] = _EPOCH + dt.timedelta(milliseconds=ms)
    d["fields"] = tuple(d["fields"])
    for key, members in _ENUMS:  # a dict lookup: an Enum call costs several times more
        if key in d:
            try:
                d[key] = members[d[key]]
            except KeyError:
                raise ValueError(f"{key} {d[key]!r} is not one this release knows") from None
    if "steps" in d:
        d["steps"] = tuple(map(Step.from_plain, d["steps"]))
    if d.keys() != _FIELDS[cls]:
        return cls(**d)
    obj = object.__new__(cls)
    obj.__dict__.update(d)
    return obj


@dataclass(frozen=True)
class BookCopy:
    """What a snapshot holds of a grant book, taken at one moment: the containers copied,
    their records shared (applications and grants are immutable; a change replaces them)."""

    applications: list[Application]
    grants: list[Grant]
    subscriptions: list[tuple[str, str]]
    accepted: list[str]
    refused: dict[str, str]
    current: list[list[str]]


def capture(book: GrantBook) -> BookCopy:
    """A copy of ``book`` that later changes to it do not touch; cheap (no record is
    walked), so the router takes it on its event loop and encodes it in a thread."""
    return BookCopy(
        list(book.applications.values()),
        list(book.grants.values()),
        sorted(book.subscriptions),
        sorted(book.accepted),
        dict(book.refused),
        [[c, r, g] for (c, r), g in book.current.items()],
    )


def encode(
    book: GrantBook | BookCopy,
    grants_offset: int,
    catalog_version: int,
    catalog_digest: str,
    writer: str,
    origin: tuple[str, int] = ("", 0),
) -> bytes:
    """``origin``: the topic id of the ``gov.ctl.grants`` replayed and its first offset.

    Given a :class:`BookCopy`, touches nothing else (safe in another thread)."""
    copy = book if isinstance(book, BookCopy) else capture(book)
    document = json.dumps(
        {
            "format": 2,
            "applications": _table(Application, copy.applications),
            "grants": _table(Grant, copy.grants),
            "subscriptions": copy.subscriptions,
            "accepted": copy.accepted,
            "refused": copy.refused,
            "current": copy.current,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return CODEC.encode(
        {
            "grants_offset": grants_offset,
            "catalog_version": catalog_version,
            "catalog_digest": catalog_digest,
            "written_by": writer,
            "digest": hashlib.sha256(document).hexdigest(),
            "book": zlib.compress(document, 1),
            "grants_topic_id": origin[0],
            "grants_from": origin[1],
        }
    )


def decode(value: bytes) -> BookSnapshot:
    """The snapshot in ``value``; :class:`DecodeError` if it is not one or is damaged."""
    rec = CODEC.decode(value)
    try:
        document = zlib.decompress(rec["book"])
        if hashlib.sha256(document).hexdigest() != rec["digest"]:
            raise DecodeError("grant book snapshot does not match its digest")
        with _no_gc():  # thousands of new objects, no cycles among them: skip the collector
            book = _book(json.loads(document))
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"grant book snapshot does not decode: {exc}") from exc
    return BookSnapshot(
        rec["grants_offset"],
        rec["catalog_version"],
        rec["catalog_digest"],
        book,
        rec["grants_topic_id"],
        rec["grants_from"],
    )


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused (then restored as it was).

    Reviving a book makes tens of thousands of objects; the collector would scan the
    young ones again and again meanwhile (a third of the decoding time, measured).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _book(d: dict[str, Any]) -> GrantBook:
    book = GrantBook()
    book.applications = {a.id: a for a in _records(Application, d["applications"])}
    book.grants = {g.id: g for g in _records(Grant, d["grants"])}
    book.subscriptions = {(c, r) for c, r in d["subscriptions"]}
    book.accepted = set(d["accepted"])
    book.refused = dict(d["refused"])
    book.current = {(c, r): g for c, r, g in d["current"]}
    return book

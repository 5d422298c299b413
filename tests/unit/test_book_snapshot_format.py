"""Grant book snapshots: format 2 (tables) round-trips, and format 1 (one object per record,
written by routers of earlier releases) still decodes to the same book."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib

import pytest

from exchange.control import book_snapshot
from exchange.errors import DecodeError
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import Application, AppStatus, Grant

AT = dt.datetime(2026, 11, 30, 3, 4, 5, 678000, tzinfo=dt.UTC)


def _book() -> GrantBook:
    book = GrantBook()
    book.applications["APP-1"] = Application(
        id="APP-1",
        consumer="police",
        resource="birth_medical_certificate",
        fields=("mother_name", "mother_id_number"),
        purpose="新生儿落户 newborn registration",
        legal_basis=None,
        applied_at=AT,
        status=AppStatus.APPROVED,
        answered_at=AT + dt.timedelta(hours=2),
        grant_id="GR-1",
    )
    book.grants["GR-1"] = Grant(
        id="GR-1",
        application_id="APP-1",
        consumer="police",
        resource="birth_medical_certificate",
        fields=("mother_id_number",),
        purpose="新生儿落户 newborn registration",
        row_filter='region_code.startsWith("33")',
        masks={"mother_id_number": "keep:6:4"},
        valid_until=None,
        approved_at=AT + dt.timedelta(hours=2),
        revoked_at=AT + dt.timedelta(days=1),
        revoke_reason="办结 done",
    )
    book.subscriptions = {("hrss", "birth_medical_certificate")}
    book.accepted = {"ev-1", "ev-2"}
    book.refused = {"ev-3": "unknown grant"}
    book.current = {("police", "birth_medical_certificate"): "GR-1"}
    return book


def _format1(book: GrantBook) -> bytes:
    document = json.dumps(
        {
            "applications": [book_snapshot._plain(a) for a in book.applications.values()],
            "grants": [book_snapshot._plain(g) for g in book.grants.values()],
            "subscriptions": sorted(book.subscriptions),
            "accepted": sorted(book.accepted),
            "refused": book.refused,
            "current": [[c, r, g] for (c, r), g in book.current.items()],
        }
    ).encode()
    return book_snapshot.CODEC.encode(
        {
            "grants_offset": 7,
            "catalog_version": 1,
            "catalog_digest": "d",
            "written_by": "router-old",
            "digest": hashlib.sha256(document).hexdigest(),
            "book": zlib.compress(document),
            "grants_topic_id": "",
            "grants_from": 0,
        }
    )


def _same(a: GrantBook, b: GrantBook) -> None:
    assert a.applications == b.applications
    assert a.grants == b.grants
    assert (a.subscriptions, a.accepted, a.refused, a.current) == (
        b.subscriptions,
        b.accepted,
        b.refused,
        b.current,
    )


def test_format_2_round_trips() -> None:
    book = _book()
    snap = book_snapshot.decode(book_snapshot.encode(book, 7, 1, "d", "router-1"))
    _same(snap.book, book)
    assert snap.grants_offset == 7
    revived = snap.book.applications["APP-1"]
    assert revived.status is AppStatus.APPROVED
    assert revived.fields == book.applications["APP-1"].fields


def test_format_1_of_earlier_routers_still_decodes() -> None:
    book = _book()
    _same(book_snapshot.decode(_format1(book)).book, book)


def test_a_row_that_does_not_fit_its_columns_is_refused() -> None:
    value = book_snapshot.encode(_book(), 7, 1, "d", "router-1")
    rec = book_snapshot.CODEC.decode(value)
    d = json.loads(zlib.decompress(rec["book"]))
    d["grants"]["rows"][0].pop()
    document = json.dumps(d).encode()
    rec.update(book=zlib.compress(document), digest=hashlib.sha256(document).hexdigest())
    with pytest.raises(DecodeError, match="does not decode"):
        book_snapshot.decode(book_snapshot.CODEC.encode(rec))


def test_a_captured_copy_encodes_the_book_as_it_was_whatever_changes_after() -> None:
    book = _book()
    before = book_snapshot.encode(book, 7, 3, "d" * 64, "router-1")
    copy = book_snapshot.capture(book)
    # the router's loop goes on changing the book while a thread encodes the copy
    book.grants["GR-2"] = book.grants["GR-1"]
    book.accepted.add("ev-4")
    book.subscriptions.add(("police", "population_basic"))
    book.refused["ev-5"] = "no such application"
    book.current[("hrss", "population_basic")] = "GR-2"
    del book.applications["APP-1"]
    assert book_snapshot.encode(copy, 7, 3, "d" * 64, "router-1") == before
    assert book_snapshot.encode(book, 7, 3, "d" * 64, "router-1") != before

"""The rules of backfills without a broker: when a view needs one, progress lines, resync limits,
and the Parquet types of a view schema."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
from aiokafka import TopicPartition

from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.errors import ExchangeError
from exchange.router.backfill_progress import resync_refusal
from exchange.router.backfill_scan import BackfillScan, Part
from exchange.router.backfill_state import (
    BackfillBook,
    Progress,
    ResyncRequest,
    shape_of,
    summary,
    widens,
)
from exchange.router.snapshot_file import _arrow_type, format_of
from exchange.sharing.policy import View

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BMC = "birth_medical_certificate"
NOW = dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)


def view(**changes: object) -> View:
    base = View(
        consumer="police",
        resource=BMC,
        provider="health",
        fields=("certificate_no", "mother_name"),
        masks={"mother_name": "surname"},
        row_filter='region_code.startsWith("33")',
        grant_id="GR-1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def progress(v: View, **changes: object) -> Progress:
    base = Progress(
        consumer=v.consumer,
        resource=v.resource,
        partition=0,
        job="BF-1",
        shape=shape_of(v),
        fields=",".join(v.fields),
        grant_id=v.grant_id,
        row_filter=v.row_filter,
        trigger="grant",
        cutover=100,
        through=99,
        delivered=80,
        total=80,
        state="done",
        reason=None,
        request="",
        at=NOW,
        instance="router-1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_wider_view_needs_a_backfill_a_narrower_one_does_not() -> None:
    before = progress(view())
    assert not widens(view(), before)  # the same view
    assert widens(view(fields=("certificate_no", "mother_name", "address")), before)
    assert widens(view(row_filter=None), before)  # looser filter
    assert widens(view(grant_id="GR-2"), before)  # a new grant
    assert widens(view(masks={}), before)  # a mask taken off: new data in clear
    assert not widens(view(fields=("certificate_no",), masks={}), before)  # fewer fields


def test_progress_lines() -> None:
    v = view()
    assert summary([]) == "no backfill"
    sending = [
        progress(v, state="sending", delivered=412_000, total=500_000),
        progress(v, partition=1, state="sending", delivered=0, total=500_000),
    ]
    assert summary(sending) == "backfill 412,000 / 1,000,000"
    scanning = [progress(v, state="scanning", total=-1, delivered=0)]
    assert summary(scanning).startswith("backfill reading the current state")
    stopped = [progress(v, state="stopped", reason="the view is gone (revoked or expired)")]
    assert summary(stopped) == "backfill stopped at 80 / 80: the view is gone (revoked or expired)"
    assert summary([progress(v)]) == "backfill done: 80 records"


def test_resync_is_limited_by_the_catalogs_interval() -> None:
    catalog = load_catalog(SCHEMAS)
    limited = catalog.model_copy(
        update={
            "resources": {
                **catalog.resources,
                BMC: catalog.resources[BMC].model_copy(update={"resync_interval_hours": 24}),
            }
        }
    )
    request = ResyncRequest("RS-2", "police", BMC, NOW)
    last = progress(view(), trigger="resync", request="RS-1", at=NOW - dt.timedelta(hours=3))
    refusal = resync_refusal(request, last, limited, NOW)
    assert refusal is not None
    assert "3.0 h ago" in refusal
    assert "every 24 h" in refusal
    assert resync_refusal(request, last, catalog, NOW) is None  # no limit declared
    later = NOW + dt.timedelta(hours=22)
    assert resync_refusal(request, last, limited, later) is None
    assert resync_refusal(request, progress(view()), limited, NOW) is None  # no resync before


def test_parquet_columns_are_typed_from_the_view_schema() -> None:
    assert _arrow_type(pa, "long") == pa.int64()
    assert _arrow_type(pa, {"type": "int", "logicalType": "date"}) == pa.date32()
    assert _arrow_type(pa, {"type": "long", "logicalType": "timestamp-millis"}) == pa.timestamp(
        "ms", tz="UTC"
    )
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}
    assert _arrow_type(pa, decimal) == pa.decimal128(18, 2)
    assert _arrow_type(pa, {"type": "enum", "name": "G", "symbols": ["M"]}) == pa.string()


def test_a_snapshot_file_must_name_its_format() -> None:
    assert format_of(Path("out.parquet")) == "parquet"
    with pytest.raises(ExchangeError, match=r"out\.xlsx: the file name must end in"):
        format_of(Path("out.xlsx"))


def test_a_scan_counts_what_it_will_deliver_as_it_goes() -> None:
    """The total at the cut-over: each key's latest record in the view, after ``through``,
    none dropped (seen again from the cut-over on, or deleted)."""
    part = Part(TopicPartition("gov.src.health.bmc", 0), cutover=10, through=1)
    steps = [
        ([(b"a", 0, b"A0", b"r"), (b"b", 1, b"B1", b"r"), (b"c", 2, None, b"r")], 3),
        ([(b"a", 3, b"A3", b"r"), (b"d", 4, b"D4", b"r"), (b"c", 5, b"C5", b"r")], 6),
        ([(b"d", -1, None, b""), (b"e", 6, None, b"r")], 10),  # d deleted, e filtered out
    ]
    for step in steps[:2]:
        BackfillScan.apply(part, step)
    assert part.total == -1  # not at the cut-over yet
    BackfillScan.apply(part, steps[2])
    # a (offset 3) and c (offset 5) are left to deliver; b (1) went out before a restart
    assert part.total == 2
    assert list(part.pending) == [b"b", b"a", b"c", b"e"]


def test_the_book_says_which_views_progress_changed_since_it_was_last_asked() -> None:
    book = BackfillBook(Connection(bootstrap="localhost:1"))
    v = view()
    first = progress(v)
    book.note(first)
    book.note(replace(first, partition=1))
    assert book.take_touched() == {(v.consumer, v.resource)}
    assert book.take_touched() == set()
    book.note(replace(first, at=NOW - dt.timedelta(seconds=1)))  # older: not kept
    assert book.take_touched() == set()
    book.note(replace(first, at=NOW + dt.timedelta(seconds=1), state="sending"))
    assert book.take_touched() == {(v.consumer, v.resource)}


def test_a_views_parts_come_by_partition_and_only_the_newest_of_each() -> None:
    book = BackfillBook(Connection(bootstrap="localhost:1"))
    v = view()
    first = progress(v)
    book.note(replace(first, partition=2))
    book.note(first)
    book.note(replace(first, consumer="someone-else"))
    newer = replace(first, at=NOW + dt.timedelta(seconds=1), state="sending")
    book.note(newer)
    book.note(replace(first, at=NOW - dt.timedelta(seconds=1)))  # older: not kept
    parts = book.of_view(v.consumer, v.resource)
    assert [(p.partition, p.state) for p in parts] == [(0, "sending"), (2, first.state)]
    assert book.of_view("nobody", v.resource) == []

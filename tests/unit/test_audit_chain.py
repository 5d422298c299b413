"""The audit hash chain: verify finds modified, inserted, deleted and reordered entries.

Pure functions only (no broker): chains are built with ``chain()``, then
altered the way someone editing an exported copy of the log would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.audit.entry import (
    GENESIS_HASH,
    Action,
    AuditEntry,
    Decision,
    Draft,
    chain,
    detail_map,
)
from exchange.audit.verify import ChainChecker, Kind, Position, positioned, verify

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)


def drafts(n: int) -> list[Draft]:
    return [
        Draft(
            Action.RECORDS_DELIVERED,
            actor="router",
            decision=Decision.DELIVERED,
            resource="birth_medical_certificate",
            consumer="police" if i % 2 else "hrss",
            provider="health",
            grant_id="GR-1" if i % 2 else None,
            purpose="落户 household registration" if i % 2 else None,
            details=detail_map(record_count=i + 1, partition=0, offsets=f"{i * 10}-{i * 10 + 9}"),
            at=T0 + dt.timedelta(seconds=i),
        )
        for i in range(n)
    ]


def log_of(n: int = 8, writer: str = "router-a") -> list[AuditEntry]:
    return chain(drafts(n), writer=writer)


def kinds(entries: list[AuditEntry]) -> list[Kind]:
    return [f.kind for f in verify(positioned(entries)).findings]


def test_an_untouched_chain_verifies_clean() -> None:
    entries = log_of()
    report = verify(positioned(entries))
    assert not report.broken
    assert report.findings == []
    assert [(w.writer, w.entries, w.first_seq, w.last_seq) for w in report.writers] == [
        ("router-a", 8, 0, 7)
    ]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_the_hash_survives_avro_and_json_round_trips() -> None:
    e = log_of(2)[1]
    again = AuditEntry.decode(e.encode())
    assert again == e
    assert again.intact
    exported = json.loads(json.dumps(e.to_json(), ensure_ascii=False))
    assert AuditEntry.from_json(exported).intact


def test_the_hash_covers_every_field_but_itself() -> None:
    e = log_of(1)[0]
    for name in e.__dataclass_fields__:
        if name in ("hash", "action", "at", "details", "seq"):
            continue
        changed = dataclasses.replace(e, **{name: (getattr(e, name) or "") + "x"})
        assert not changed.intact, name
    assert not dataclasses.replace(e, seq=5).intact
    assert not dataclasses.replace(e, action=Action.COMMAND_REFUSED).intact
    assert not dataclasses.replace(e, at=e.at + dt.timedelta(milliseconds=1)).intact
    assert not dataclasses.replace(e, details={**e.details, "record_count": "999"}).intact


def test_an_edited_entry_is_found_at_its_position() -> None:
    entries = log_of()
    entries[3] = dataclasses.replace(entries[3], consumer="civil_affairs")
    report = verify(positioned(entries))
    assert report.broken
    [f] = report.problems
    assert (f.kind, f.seq, f.position) == (Kind.MODIFIED, 3, Position(0, 3))
    assert "offset 3" in f.message


def test_an_edited_and_rehashed_entry_breaks_the_link_to_the_next() -> None:
    entries = log_of()
    entries[3] = dataclasses.replace(entries[3], consumer="civil_affairs").rehashed()
    [f] = verify(positioned(entries)).problems
    assert (f.kind, f.seq, f.position) == (Kind.CHAIN_BROKEN, 4, Position(0, 4))
    assert "seq 3" in f.message
    assert "offset 3" in f.message


def test_an_inserted_entry_is_found() -> None:
    entries = log_of()
    forged = dataclasses.replace(entries[5], consumer="civil_affairs", grant_id="GR-X").rehashed()
    entries.insert(6, forged)
    [f] = verify(positioned(entries)).problems
    assert (f.kind, f.seq, f.position) == (Kind.INSERTED, 5, Position(0, 6))
    assert "offset 5" in f.message  # names the genuine one too


def test_an_entry_with_a_made_up_hash_appended_at_the_end_is_found() -> None:
    entries = log_of()
    tail = dataclasses.replace(entries[-1], seq=8, id="router-a#8", prev_hash=entries[-1].hash)
    entries.append(dataclasses.replace(tail, hash="f" * 64))
    [f] = verify(positioned(entries)).problems
    assert (f.kind, f.seq) == (Kind.MODIFIED, 8)


def test_a_deleted_entry_is_found_between_its_neighbours() -> None:
    entries = log_of()
    del entries[4]
    [f] = verify(positioned(entries)).problems
    assert (f.kind, f.seq, f.last_seq) == (Kind.DELETED, 4, 4)
    assert f.message == "seq 4 missing between offset 3 and offset 4"


def test_deleting_the_start_of_a_chain_is_found() -> None:
    entries = log_of()[2:]
    [f] = verify(positioned(entries)).problems
    assert (f.kind, f.seq, f.last_seq) == (Kind.DELETED, 0, 1)


def test_two_swapped_entries_are_reported_as_reordered_only() -> None:
    entries = log_of()
    entries[2], entries[3] = entries[3], entries[2]
    [f] = verify(positioned(entries)).problems
    assert (f.kind, f.seq, f.position) == (Kind.REORDERED, 2, Position(0, 3))


def test_an_exact_duplicate_is_not_a_break() -> None:
    entries = log_of()
    entries.insert(4, entries[3])
    report = verify(positioned(entries))
    assert not report.broken
    assert [f.kind for f in report.findings] == [Kind.DUPLICATE]
    assert report.writers[0].duplicates == 1


def test_interleaved_writers_are_checked_separately() -> None:
    a, b = log_of(5, "router-a"), log_of(5, "police-b")
    mixed = [e for pair in zip(a, b, strict=True) for e in pair]
    assert not verify(positioned(mixed)).broken
    mixed[5] = dataclasses.replace(mixed[5], purpose="别的用途")  # b's seq 2
    report = verify(positioned(mixed))
    assert [(f.kind, f.writer, f.seq) for f in report.problems] == [(Kind.MODIFIED, "police-b", 2)]
    assert {w.writer: w.problems for w in report.writers} == {"police-b": 1, "router-a": 0}


def test_a_record_that_is_no_entry_breaks_the_log() -> None:
    items = positioned(log_of(3))
    items.append((Position(0, 3), "schema id 7 is not a AuditEntry"))
    assert [f.kind for f in verify(items).problems] == [Kind.UNREADABLE]


def test_a_chain_not_starting_from_genesis_is_broken() -> None:
    entries = chain(drafts(3), writer="x", start_hash="1" * 64)
    assert kinds(entries) == [Kind.CHAIN_BROKEN]


def test_a_bounded_checker_still_finds_edits_and_insertions() -> None:
    entries = log_of(50)
    entries[40] = dataclasses.replace(entries[40], reason="edited")
    entries.append(dataclasses.replace(entries[45], consumer="x").rehashed())
    checker = ChainChecker(window=8, max_writers=2)
    found = []
    for pos, e in positioned(entries):
        assert isinstance(e, AuditEntry)
        found += checker.feed(pos, e)
    assert [f.kind for f in found] == [Kind.MODIFIED, Kind.INSERTED]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=20),
    data=st.data(),
    how=st.sampled_from(["edit", "delete", "swap", "insert"]),
)
def test_any_single_tampering_is_found(n: int, data: st.DataObject, how: str) -> None:
    entries = log_of(n)
    if how == "delete":
        # dropping the last entry is a truncated tail: no hash chain can tell
        i = data.draw(st.integers(0, n - 2))
        del entries[i]
    elif how == "swap":
        i = data.draw(st.integers(0, n - 2))
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    elif how == "edit":
        i = data.draw(st.integers(0, n - 1))
        entries[i] = dataclasses.replace(entries[i], reason="edited")
    else:
        i = data.draw(st.integers(0, n - 1))
        forged = dataclasses.replace(entries[i], decision="denied").rehashed()
        entries.insert(data.draw(st.integers(i + 1, n)), forged)
    assert verify(positioned(entries)).broken


def test_seal_keeps_millisecond_time_and_caps_long_reasons() -> None:
    d = Draft(
        Action.COMMAND_REFUSED,
        actor="police",
        decision=Decision.REFUSED,
        reason="x" * 5000,
        at=dt.datetime(2026, 11, 2, 1, 0, 0, 123456, tzinfo=dt.UTC),
    )
    [e] = chain([d], writer="w")
    assert e.at.microsecond == 123000
    assert e.reason is not None
    assert len(e.reason) == 1000
    assert AuditEntry.decode(e.encode()).intact


def test_detail_map_never_holds_anything_but_strings() -> None:
    d = detail_map(
        n=3,
        ok=True,
        fields=("a", "b"),
        masks={"id": "keep:6:4"},
        gone=None,
        at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    assert d == {
        "n": "3",
        "ok": "true",
        "fields": "a,b",
        "masks": "id=keep:6:4",
        "at": "2026-01-01T08:00:00+08:00",  # Beijing time, the same instant
    }


@pytest.mark.parametrize("action", list(Action))
def test_every_action_is_in_the_avro_schema(action: Action) -> None:
    [e] = chain([Draft(action, actor="admin", decision="x")], writer="w")
    assert AuditEntry.decode(e.encode()).action is action

"""Pruning the archive by month: refused unless old enough, verified and signed.

A SQLite archive in a temporary file, filled with chains written by a signing
writer (and one that does not sign), dated in old months; pruned as
``exchange audit archive --prune-before`` does.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from test_audit_heads import _Producer, _Registry, _signer

from exchange.audit import retention
from exchange.audit.archive import Archive
from exchange.audit.archive_url import open_archive
from exchange.audit.entry import Action, AuditEntry, Decision, Draft
from exchange.audit.verify import Position, verify
from exchange.beijing import CHINA_TZ

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=CHINA_TZ)
OLD = dt.datetime(2025, 1, 10, 9, 0, tzinfo=CHINA_TZ)
RECENT = dt.datetime(2026, 10, 2, 9, 0, tzinfo=CHINA_TZ)


def _draft(at: dt.datetime, i: int) -> Draft:
    return Draft(
        Action.RECORDS_DELIVERED,
        actor="router",
        decision=Decision.DELIVERED,
        resource="birth_medical_certificate",
        consumer="police",
        details={"record_count": str(i)},
        at=at + dt.timedelta(minutes=i),
    )


async def _chain(signer: object, old: int, recent: int) -> list[AuditEntry]:
    from exchange.audit.writer import AuditWriter

    producer = _Producer()
    writer = AuditWriter(producer, _Registry(), role="router", instance="h", signer=signer)  # type: ignore[arg-type]
    for i in range(old):
        await writer.write(_draft(OLD, i))
    for i in range(recent):
        await writer.write(_draft(RECENT, i))
    await writer.stop()
    return [AuditEntry.decode(v) for v in producer.values]


def _archive(tmp_path: Path, *chains: list[AuditEntry]) -> Archive:
    db = open_archive(f"sqlite:///{tmp_path / 'a.sqlite'}")
    items: list[tuple[Position, AuditEntry | str]] = []
    for e in (e for c in chains for e in c):
        items.append((Position(0, len(items)), e))
    db.store("gov.audit", items, {0: len(items)})
    return db


def _plan(db: Archive, month: str, keys: dict[str, str]) -> retention.PrunePlan:
    return retention.plan(db, retention.month_start(month), keys=keys, retention_months=6, now=NOW)


async def test_a_signed_verified_old_month_is_pruned_and_the_archive_still_verifies(
    tmp_path: Path,
) -> None:
    signer, public = _signer(every=4)
    entries = await _chain(signer, old=10, recent=5)
    keys = {"gov-router-1": public}
    with _archive(tmp_path, entries) as db:
        p = _plan(db, "2026-05", keys)
        dropped = retention.prune(db, p)
        # the ten old entries and the heads (dated when signed) written among them
        old = [
            e
            for e in entries
            if e.at < retention.month_start("2026-05") and e.action is not Action.CHAIN_HEAD
        ]
        assert len(old) == 10
        gone = [e for e in entries if e.seq <= old[-1].seq]
        assert dropped == len(gone) == len(entries) - db.count()
        report = verify(db.log(), keys=keys, anchors=retention.anchors(db))
        assert not report.broken, report.problems
        assert report.writers[0].first_seq == old[-1].seq + 1
        assert retention.anchors(db)[entries[0].writer].seq == old[-1].seq


async def test_a_month_inside_the_retention_period_is_refused_with_the_law(
    tmp_path: Path,
) -> None:
    signer, public = _signer()
    with (
        _archive(tmp_path, await _chain(signer, 3, 3)) as db,
        pytest.raises(retention.PruneRefused, match="网络安全法"),
    ):
        _plan(db, "2026-06", {"gov-router-1": public})
    with pytest.raises(retention.PruneRefused, match="YYYY-MM"):
        retention.month_start("2026-5-1")


async def test_entries_not_covered_by_a_signed_head_are_not_dropped(tmp_path: Path) -> None:
    signer, public = _signer(every=4)
    signed = await _chain(signer, 6, 2)
    unsigned = await _chain(None, 3, 1)
    with _archive(tmp_path, signed, unsigned) as db:
        with pytest.raises(retention.PruneRefused) as refused:
            _plan(db, "2026-05", {"gov-router-1": public})
        assert unsigned[0].writer in str(refused.value)
        assert db.count() == len(signed) + len(unsigned)  # nothing dropped


async def test_an_archive_that_does_not_verify_is_not_pruned(tmp_path: Path) -> None:
    signer, public = _signer(every=4)
    entries = await _chain(signer, 6, 2)
    with _archive(tmp_path, entries) as db:
        with db.transaction() as cur:
            cur.execute(
                "UPDATE audit_entries SET details = ? WHERE seq = 2",
                (json.dumps({"record_count": "999"}),),
            )
        with pytest.raises(retention.PruneRefused, match="does not verify"):
            _plan(db, "2026-05", {"gov-router-1": public})

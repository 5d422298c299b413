"""Retention of the archive: kept by month, pruned only when proven and old enough.

The archive is partitioned by month (Beijing time): every entry belongs to
the month of its ``at``, and ``exchange audit archive --prune-before YYYY-MM``
drops whole months, oldest first. It refuses, naming what stops it, unless:

* the month is older than the retention period (``EXCHANGE_AUDIT_RETENTION_MONTHS``,
  at least 6: the Cybersecurity Law (《网络安全法》) art. 21(3) keeps network logs
  no less than six months);
* the archive verifies: no chain to be pruned is modified, broken, forged or
  wrongly signed;
* every entry to be dropped is covered by a validly signed head (nothing of
  an unsigned tail is dropped).

What a prune drops is remembered per writer in ``audit_anchors`` (the last
dropped seq and its hash, and the service that signed it), so later
verifications of the archive start each chain there instead of reporting the
dropped entries as deleted. Months are logical partitions (an indexed ``at``),
not PostgreSQL table partitions: a partitioned table's unique keys must hold the
partition key, and the archive's idempotence rests on the key ``(writer, seq)``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exchange.audit.verify import verify
from exchange.beijing import CHINA_TZ
from exchange.errors import ExchangeError

ANCHORS_TABLE = (
    "CREATE TABLE IF NOT EXISTS audit_anchors (writer TEXT PRIMARY KEY, seq BIGINT NOT NULL, "
    "hash TEXT NOT NULL, service TEXT, pruned_before TEXT NOT NULL)"
)
LAW = "《网络安全法》 (Cybersecurity Law) art. 21(3): network logs are kept no less than six months"
MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class PruneRefused(ExchangeError):
    """A prune that would drop entries not old enough, not verified or not signed."""


@dataclass(frozen=True)
class Anchor:
    """Where a writer's chain resumes in a pruned archive: its last dropped entry."""

    seq: int
    hash: str
    service: str | None


def month_start(text: str) -> dt.datetime:
    """The first instant (Beijing time) of a month written ``YYYY-MM``."""
    m = MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PruneRefused(f"--prune-before {text!r}: write a month, YYYY-MM (e.g. 2026-05)")
    return dt.datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=CHINA_TZ)


def months_back(at: dt.datetime, months: int) -> dt.datetime:
    """The first instant of the month ``months`` before the month of ``at`` (Beijing)."""
    local = at.astimezone(CHINA_TZ)
    index = local.year * 12 + local.month - 1 - months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=CHINA_TZ)


def anchors(archive: Any) -> dict[str, Anchor]:
    """Per writer, its last entry pruned from the archive (none for an archive never pruned)."""
    try:
        with archive.transaction() as cur:
            cur.execute("SELECT writer, seq, hash, service FROM audit_anchors")
            return {w: Anchor(int(s), h, svc) for w, s, h, svc in cur.fetchall()}
    except Exception:  # sqlite3 or psycopg: an archive made before pruning existed
        return {}


@dataclass
class PrunePlan:
    before: dt.datetime
    entries: int = 0
    #: per writer, the last entry dropped
    anchors: dict[str, Anchor] = field(default_factory=dict)


def plan(
    archive: Any,
    before: dt.datetime,
    *,
    keys: Mapping[str, str],
    retention_months: int,
    now: dt.datetime,
) -> PrunePlan:
    """What a prune before ``before`` drops; :class:`PruneRefused` says why it may not."""
    keep_from = months_back(now, retention_months)
    if before > keep_from:
        raise PruneRefused(
            f"entries from {keep_from:%Y-%m} on are within the retention period of "
            f"{retention_months} months (EXCHANGE_AUDIT_RETENTION_MONTHS; {LAW}): "
            f"prune before {keep_from:%Y-%m} at the latest"
        )
    if not keys:
        raise PruneRefused(
            "the catalog registers no service identity (services.yaml): no entry is covered by "
            "a signed head, so none may be dropped"
        )
    last = _last_dropped(archive, before)
    result = PrunePlan(before, entries=sum(n for _, n in last.values()))  # a plan: exact below
    if not last:
        return result
    report = verify(archive.log(), keys=keys, anchors=anchors(archive))
    broken = sorted({f"{f.writer}: {f.kind.value}" for f in report.problems if f.writer in last})
    if any(f.writer is None for f in report.problems):
        broken.append("records that are no audit entries")
    if broken:
        raise PruneRefused(
            "the archive does not verify; nothing pruned ('exchange audit verify --archive'): "
            + "; ".join(broken[:10])
        )
    summaries = {h.writer: h for h in report.heads or []}
    unsigned = []
    for writer, ((seq, _), _) in sorted(last.items()):
        h = summaries.get(writer)
        if h is None or h.covered_seq is None or h.covered_seq < seq:
            covered = "none" if h is None or h.covered_seq is None else f"up to {h.covered_seq}"
            unsigned.append(f"{writer} (dropping up to seq {seq}, signed {covered})")
            continue
        result.anchors[writer] = Anchor(seq, last[writer][0][1], h.service)
    if unsigned:
        raise PruneRefused(
            "entries not covered by a signed head would be dropped; nothing pruned: "
            + "; ".join(unsigned[:10])
        )
    return result


def _last_dropped(archive: Any, before: dt.datetime) -> dict[str, tuple[tuple[int, str], int]]:
    """Per writer with entries before ``before``: (the last seq and hash to drop, how many).

    A chain is dropped as a prefix, up to the entry before its first one from ``before``
    on: an entry dated earlier than its predecessors (an expiry is dated when it
    happened) never takes newer ones with it. Heads do not count as newer: a head is
    dated when it was signed, and goes with the entries it follows.
    """
    with archive.transaction() as cur:
        cur.execute(
            archive.sql(
                "SELECT writer, min(seq) FROM audit_entries WHERE at >= ? "
                "AND action <> 'CHAIN_HEAD' GROUP BY writer"
            ),
            [archive.at_param(before)],
        )
        kept_from = {w: int(s) for w, s in cur.fetchall()}
        cur.execute(
            archive.sql(
                "SELECT writer, min(seq), max(seq) FROM audit_entries WHERE at < ? GROUP BY writer"
            ),
            [archive.at_param(before)],
        )
        out: dict[str, tuple[tuple[int, str], int]] = {}
        for writer, low, high in cur.fetchall():
            last = min(int(high), kept_from[writer] - 1) if writer in kept_from else int(high)
            cur.execute(
                archive.sql(
                    "SELECT hash, count(*) OVER () FROM audit_entries WHERE writer = ? AND seq <= ? "
                    "ORDER BY seq DESC LIMIT 1"
                ),
                [writer, last],
            )
            row = cur.fetchone()
            if row is not None and int(low) <= last:
                out[writer] = ((last, row[0]), int(row[1]))
        return out


def prune(archive: Any, p: PrunePlan) -> int:
    """Drop the planned months and remember the anchors, in one transaction."""
    label = p.before.strftime("%Y-%m")
    with archive.transaction() as cur:
        dropped = 0
        for writer, a in p.anchors.items():
            cur.execute(
                archive.sql("DELETE FROM audit_keys WHERE writer = ? AND seq <= ?"), [writer, a.seq]
            )
            cur.execute(
                archive.sql("DELETE FROM audit_entries WHERE writer = ? AND seq <= ?"),
                [writer, a.seq],
            )
            dropped += max(cur.rowcount, 0)
            cur.execute(archive.sql("DELETE FROM audit_anchors WHERE writer = ?"), [writer])
            cur.execute(
                archive.sql(
                    "INSERT INTO audit_anchors (writer, seq, hash, service, pruned_before) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                [writer, a.seq, a.hash, a.service, label],
            )
    return dropped

"""Verifying the hash chains of the access log: what was modified, inserted, deleted or reordered.

Entries are checked in log order, per writer, by :class:`ChainChecker` (pure:
no Kafka, no clock). What each finding means:

=================  ==========================================================
``modified``       the entry's content no longer matches its own hash
``chain_broken``   the entry's ``prev_hash`` is not the hash of the entry before
                   it in its chain: that one was rewritten with a recomputed
                   hash, or this one was forged
``inserted``       a second, different entry with a seq already taken
``deleted``        seqs missing from a chain (a gap, or a chain that does not
                   start at 0)
``reordered``      an entry that appears after an entry later in its chain
``unreadable``     a record of the log that is not an audit entry at all
``duplicate``      the same entry twice (a producer retry): not a break
=================  ==========================================================

What a hash chain cannot show on its own: a truncated tail (the last
entries of a chain removed) and a whole chain forged under a new writer id.
Signed chain heads (:mod:`exchange.audit.heads`, checked by
:mod:`exchange.audit.head_check`: kinds ``forged``, ``bad_signature``,
``head_mismatch``, ``head_backwards``, ``unsigned_tail``) and the archive
(:mod:`exchange.audit.truncation`: ``truncated``) cover those.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from exchange.audit.entry import GENESIS_HASH, AuditEntry
from exchange.audit.finding import NOTICES, Finding, Kind, Position
from exchange.audit.head_check import HeadChecker

__all__ = ["NOTICES", "ChainChecker", "Finding", "Kind", "Position", "VerifyReport", "verify"]


class _Seen(NamedTuple):
    hash: str
    prev_hash: str
    position: Position


@dataclass
class _Gap:
    first: int
    last: int
    after: Position | None  # last in-order entry before the gap
    before: Position  # entry that revealed it


@dataclass
class WriterSummary:
    writer: str
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    duplicates: int = 0
    problems: int = 0

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class _State:
    summary: WriterSummary
    next_seq: int = 0
    last_hash: str = GENESIS_HASH
    last_pos: Position | None = None
    seen: dict[int, _Seen] = field(default_factory=dict)
    gaps: list[_Gap] = field(default_factory=list)


def _at(pos: Position | None) -> str:
    return f"at {pos}" if pos is not None else "at the start of the log"


class ChainChecker:
    """Feed entries in log order; :meth:`finish` reports the gaps never filled.

    ``window`` bounds how many past entries per writer are remembered for
    telling duplicates from insertions (None: all; ``verify`` uses all, a
    long-running archiver a few thousand). ``max_writers`` bounds how many
    chains are followed at once; the oldest is forgotten first.
    """

    def __init__(
        self,
        *,
        window: int | None = None,
        max_writers: int | None = None,
        anchors: Mapping[str, Any] | None = None,
    ) -> None:
        self.window = window
        self.max_writers = max_writers
        #: per writer, where its chain resumes in a pruned archive (``.seq``, ``.hash``)
        self.anchors = dict(anchors or {})
        self._writers: OrderedDict[str, _State] = OrderedDict()
        self.summaries: dict[str, WriterSummary] = {}
        self.findings: list[Finding] = []
        self.entries = 0

    def _state(self, writer: str) -> _State:
        st = self._writers.get(writer)
        if st is None:
            summary = self.summaries.setdefault(writer, WriterSummary(writer))
            st = self._writers[writer] = _State(summary)
            anchor = self.anchors.get(writer)
            if anchor is not None:  # the entries up to it were pruned after verification
                st.next_seq, st.last_hash = anchor.seq + 1, anchor.hash
            if self.max_writers is not None and len(self._writers) > self.max_writers:
                self._writers.popitem(last=False)
        else:
            self._writers.move_to_end(writer)
        return st

    def _report(self, st: _State | None, finding: Finding, out: list[Finding]) -> None:
        if st is not None and finding.broken:
            st.summary.problems += 1
        self.findings.append(finding)
        out.append(finding)

    def unreadable(self, pos: Position, reason: str) -> Finding:
        out: list[Finding] = []
        self._report(
            None, Finding(Kind.UNREADABLE, f"{pos}: not an audit entry: {reason}", pos), out
        )
        return out[0]

    def feed(self, pos: Position, e: AuditEntry) -> list[Finding]:
        """Check one entry against its chain so far; returns what it revealed at once."""
        out: list[Finding] = []
        self.entries += 1
        st = self._state(e.writer)
        s = st.summary
        s.entries += 1
        s.first_seq = e.seq if s.first_seq is None else min(s.first_seq, e.seq)
        s.last_seq = e.seq if s.last_seq is None else max(s.last_seq, e.seq)
        w, n = e.writer, e.seq

        def report(kind: Kind, message: str, **kw: int | None) -> None:
            self._report(st, Finding(kind, message, pos, w, n, **kw), out)

        intact = e.intact
        if not intact:
            report(Kind.MODIFIED, f"seq {n} {_at(pos)}: its content does not match its hash")
        if n == st.next_seq:
            if e.prev_hash != st.last_hash:
                if n == 0:
                    report(Kind.CHAIN_BROKEN, f"seq 0 {_at(pos)} does not start a chain")
                else:
                    report(
                        Kind.CHAIN_BROKEN,
                        f"seq {n} {_at(pos)} does not link to seq {n - 1} {_at(st.last_pos)}: "
                        f"seq {n - 1} was rewritten (its hash recomputed) or seq {n} was forged",
                    )
            self._advance(st, pos, e)
        elif n > st.next_seq:
            st.gaps.append(_Gap(st.next_seq, n - 1, st.last_pos, pos))
            self._advance(st, pos, e)
        elif n in st.seen:
            first = st.seen[n]
            if first.hash == e.hash and intact:
                s.duplicates += 1
                report(Kind.DUPLICATE, f"seq {n} {_at(pos)} repeats {first.position} exactly")
            else:
                report(
                    Kind.INSERTED,
                    f"seq {n} {_at(pos)} differs from seq {n} {_at(first.position)}: "
                    "one of them was inserted",
                )
        elif self._fill(st, n):
            report(
                Kind.REORDERED,
                f"seq {n} {_at(pos)} comes after seq {st.next_seq - 1} {_at(st.last_pos)}: "
                "out of order",
            )
            before, after = st.seen.get(n - 1), st.seen.get(n + 1)
            if before is not None and e.prev_hash != before.hash:
                report(Kind.CHAIN_BROKEN, f"seq {n} {_at(pos)} does not link to seq {n - 1}")
            if after is not None and after.prev_hash != e.hash:
                report(
                    Kind.CHAIN_BROKEN,
                    f"seq {n + 1} {_at(after.position)} does not link to seq {n} {_at(pos)}",
                    seq=n + 1,
                )
            self._remember(st, pos, e)
        else:
            report(
                Kind.INSERTED,
                f"seq {n} {_at(pos)} reappears after its chain moved past it to seq "
                f"{st.next_seq - 1}",
            )
        return out

    def _advance(self, st: _State, pos: Position, e: AuditEntry) -> None:
        st.next_seq = e.seq + 1
        st.last_hash = e.hash
        st.last_pos = pos
        self._remember(st, pos, e)

    def _remember(self, st: _State, pos: Position, e: AuditEntry) -> None:
        st.seen[e.seq] = _Seen(e.hash, e.prev_hash, pos)
        if self.window is not None and len(st.seen) > self.window:
            del st.seen[next(iter(st.seen))]

    @staticmethod
    def _fill(st: _State, seq: int) -> bool:
        """Take ``seq`` out of a gap; False if it was in none."""
        for i, gap in enumerate(st.gaps):
            if gap.first <= seq <= gap.last:
                parts = []
                if gap.first < seq:
                    parts.append(_Gap(gap.first, seq - 1, gap.after, gap.before))
                if seq < gap.last:
                    parts.append(_Gap(seq + 1, gap.last, gap.after, gap.before))
                st.gaps[i : i + 1] = parts
                return True
        return False

    def finish(self) -> list[Finding]:
        """Report every seq still missing as deleted."""
        out: list[Finding] = []
        for writer, st in self._writers.items():
            for gap in st.gaps:
                seqs = (
                    f"seq {gap.first}" if gap.first == gap.last else f"seqs {gap.first}-{gap.last}"
                )
                where = (
                    f"between {gap.after} and {gap.before}"
                    if gap.after is not None
                    else f"before {gap.before}"
                )
                self._report(
                    st,
                    Finding(
                        Kind.DELETED,
                        f"{seqs} missing {where}",
                        gap.before,
                        writer,
                        gap.first,
                        gap.last,
                    ),
                    out,
                )
            st.gaps = []
        return out


@dataclass
class VerifyReport:
    entries: int
    writers: list[WriterSummary]
    findings: list[Finding]
    #: per writer, what signed heads cover (None: heads not checked)
    heads: list[Any] | None = None

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.broken]

    @property
    def broken(self) -> bool:
        return bool(self.problems)

    def to_json(self) -> dict[str, object]:
        return {
            "intact": not self.broken,
            "entries": self.entries,
            "writers": [w.to_json() for w in self.writers],
            "findings": [f.to_json() for f in self.findings],
            "heads": None if self.heads is None else [h.to_json() for h in self.heads],
        }


def verify(
    items: Iterable[tuple[Position, AuditEntry | str]],
    *,
    keys: Mapping[str, str] | None = None,
    required: bool | None = None,
    anchors: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Check a whole log (entries, or the reason a record is unreadable) in log order.

    With ``keys`` (service id -> Ed25519 public key, ``Catalog.head_keys()``) the signed
    chain heads are checked too: an unsigned chain is forged when any key is registered
    (or ``required``), a notice otherwise. ``anchors``: where chains resume in a pruned
    archive (:func:`exchange.audit.retention.anchors`).
    """
    checker = ChainChecker(anchors=anchors)
    heads = HeadChecker(keys, required=required, anchors=anchors) if keys is not None else None
    for pos, item in items:
        if isinstance(item, str):
            checker.unreadable(pos, item)
        else:
            checker.feed(pos, item)
            if heads is not None:
                heads.feed(pos, item)
    checker.finish()
    findings = checker.findings
    if heads is not None:
        for f in heads.finish():
            if f.broken and f.writer in checker.summaries:
                checker.summaries[f.writer].problems += 1
            findings.append(f)
    writers = sorted(checker.summaries.values(), key=lambda s: s.writer)
    return VerifyReport(
        checker.entries, writers, findings, heads.summaries if heads is not None else None
    )


def positioned(entries: Iterable[AuditEntry]) -> list[tuple[Position, AuditEntry | str]]:
    """An exported list of entries, positioned by index (for checking a copy)."""
    return [(Position(0, i), e) for i, e in enumerate(entries)]

"""Checking signed chain heads: which entries of each writer a valid signature covers.

Fed the same entries as :class:`~exchange.audit.verify.ChainChecker`, in log
order, with the service keys of the catalog (``Catalog.head_keys``). Per
writer it finds:

===================  ===========================================================
``bad_signature``    a head whose signature does not verify with the key of the
                     service it names, or that names no service of the catalog
``head_mismatch``    a validly signed head whose hash is not the hash of the
                     entry at its seq: that entry (or the chain up to it) was
                     rewritten after it was signed
``head_backwards``   a head of a lower seq than a head before it in the log
``forged``           a chain with entries and no validly signed head at all,
                     when the catalog registers service keys (or signatures are
                     required): nobody holding a key wrote it
``unsigned``         such a chain when no key is registered (an old bus), or one
                     that ended before the first catalog load registering service
                     identities (its ``CATALOG_CHANGED`` entry, by log position:
                     records cannot be put before it afterwards): a notice
``unsigned_tail``    entries after the last validly signed head (a running
                     writer always has one: how many is the point)
===================  ===========================================================

A head covers every seq up to its own (its own entry included, since it
carries the signature); with a hash chain intact up to it, that proves those
entries are the ones the service wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.finding import Finding, Kind, Position
from exchange.audit.heads import Head


@dataclass
class _Writer:
    hashes: dict[int, str] = field(default_factory=dict)
    pending: list[tuple[Position, Head, int]] = field(default_factory=list)  # not yet matched
    last_seq: int = -1
    last_pos: Position | None = None
    covered: int = -1  # newest seq a valid head covers
    head_seq: int = -1  # seq of the newest head seen (for going backwards)
    service: str | None = None
    signed: bool = False  # a valid head matches its entry
    rewritten: bool = False  # a valid head does not: reported as head_mismatch already


@dataclass
class HeadSummary:
    """What the heads say of one writer: its service, what they cover, what is unsigned."""

    writer: str
    service: str | None
    covered_seq: int | None
    unsigned_tail: int

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class HeadChecker:
    """Feed entries in log order; :meth:`finish` gives the per-writer findings and summaries."""

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        required: bool | None = None,
        anchors: Mapping[str, Any] | None = None,
    ) -> None:
        self.keys = dict(keys)
        #: per writer, its last entry pruned from an archive (``.seq``, ``.service``): pruned
        #: only once covered by a signed head, so the chain starts signed up to there
        self.anchors = dict(anchors or {})
        #: an unsigned chain is forged (broken) once any service key is registered
        self.required = bool(self.keys) if required is None else required
        self._writers: dict[str, _Writer] = {}
        #: where the first catalog load registering services was logged: chains that ended
        #: before it were written before anyone could sign
        self.signing_from: Position | None = None
        self.findings: list[Finding] = []
        self.summaries: list[HeadSummary] = []

    def feed(self, pos: Position, e: AuditEntry) -> None:
        w = self._writers.get(e.writer)
        if w is None:
            w = self._writers[e.writer] = _Writer()
            anchor = self.anchors.get(e.writer)
            if anchor is not None:
                w.covered, w.service, w.signed = anchor.seq, anchor.service, True
        w.hashes.setdefault(e.seq, e.hash)
        if e.seq > w.last_seq:
            w.last_seq, w.last_pos = e.seq, pos
        if (
            self.signing_from is None
            and e.action is Action.CATALOG_CHANGED
            and "services_changed" in e.details
        ):
            self.signing_from = pos
        head = Head.of(e)
        if head is None:
            return
        if head.seq < w.head_seq:
            self._add(
                Kind.HEAD_BACKWARDS,
                f"head over seq {head.seq} {pos} comes after a head over seq {w.head_seq}",
                pos,
                e.writer,
                head.seq,
            )
        w.head_seq = max(w.head_seq, head.seq)
        key = self.keys.get(head.service)
        if key is None or not head.valid(key):
            why = (
                f"names service {head.service!r}, which the catalog does not register"
                if key is None
                else f"its signature does not verify with the key of {head.service!r}"
            )
            self._add(Kind.BAD_SIGNATURE, f"head over seq {head.seq} {pos}: {why}", pos, e.writer)
            return
        if w.service is not None and w.service != head.service:
            self._add(
                Kind.BAD_SIGNATURE,
                f"head over seq {head.seq} {pos} is signed by {head.service!r}, earlier heads "
                f"of this chain by {w.service!r}",
                pos,
                e.writer,
                head.seq,
            )
            return
        w.service = head.service
        w.pending.append((pos, head, e.seq))

    def _add(
        self, kind: Kind, message: str, pos: Position | None, writer: str, seq: int | None = None
    ) -> None:
        self.findings.append(Finding(kind, message, pos, writer, seq))

    def finish(self) -> list[Finding]:
        """Match every valid head with the entry it covers; report per writer."""
        for writer, w in sorted(self._writers.items()):
            for pos, head, own_seq in w.pending:
                actual = w.hashes.get(head.seq)
                if actual is None:
                    continue  # the covered entry is missing: the chain check reports the gap
                if actual != head.hash:
                    self._add(
                        Kind.HEAD_MISMATCH,
                        f"seq {head.seq} is not the entry signed by {head.service!r} in the head "
                        f"{pos}: it was rewritten after it was signed",
                        pos,
                        writer,
                        head.seq,
                    )
                    w.rewritten = True
                    continue
                w.signed = True
                w.covered = max(w.covered, own_seq)
            self._summarise(writer, w)
        return self.findings

    def _summarise(self, writer: str, w: _Writer) -> None:
        if not w.signed:
            entries = len(w.hashes)
            legacy = (
                self.signing_from is not None
                and w.last_pos is not None
                and w.last_pos < self.signing_from
            )
            if legacy:
                self._add(
                    Kind.UNSIGNED,
                    f"{entries} entries, all before service identities were registered "
                    f"({self.signing_from}): nothing is proven",
                    w.last_pos,
                    writer,
                )
            elif self.required and not w.rewritten:
                self._add(
                    Kind.FORGED,
                    f"{entries} entries and no validly signed head: no registered service "
                    "wrote this chain",
                    w.last_pos,
                    writer,
                )
            else:
                self._add(
                    Kind.UNSIGNED,
                    f"{entries} entries and no signed head (the catalog registers no service "
                    "key: nothing is proven)",
                    w.last_pos,
                    writer,
                )
            self.summaries.append(HeadSummary(writer, None, None, entries))
            return
        tail = w.last_seq - w.covered
        if tail > 0:
            self._add(
                Kind.UNSIGNED_TAIL,
                f"seqs {w.covered + 1}-{w.last_seq} ({tail} entries) after the last signed head "
                "are not covered by a signature yet",
                w.last_pos,
                writer,
                w.covered + 1,
            )
        self.summaries.append(HeadSummary(writer, w.service, w.covered, max(tail, 0)))

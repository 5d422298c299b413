"""Truncation: what the archive holds and the topic no longer does.

A hash chain cannot show its tail cut off, and a cut tail takes its signed
heads with it. The archive (``exchange audit archive``) keeps every entry
and every head it saw, so comparing the two shows a deletion: an archived
entry missing from ``gov.audit`` is reported (``truncated``) with its seqs and
archived offsets, and said to include a signed head when it does; an entry
whose content differs between the two is reported as ``modified``.

Entries older than the topic's retention (``since``: the oldest time the topic
still keeps) left it lawfully and are not reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.finding import Finding, Kind, Position

Item = tuple[Position, AuditEntry | str]


@dataclass
class _Run:
    first: int
    last: int
    first_pos: Position
    last_pos: Position
    heads: list[int] = field(default_factory=list)


def compare(
    topic: Iterable[Item], archive: Iterable[Item], *, since: dt.datetime | None = None
) -> list[Finding]:
    """Findings for every archived entry the topic lost (or holds with other content)."""
    on_topic: dict[tuple[str, int], str] = {}
    for _, e in topic:
        if isinstance(e, AuditEntry):
            on_topic.setdefault((e.writer, e.seq), e.hash)
    findings: list[Finding] = []
    runs: dict[str, list[_Run]] = {}
    for pos, e in archive:
        if not isinstance(e, AuditEntry):
            continue
        held = on_topic.get((e.writer, e.seq))
        if held is not None:
            if held != e.hash:
                findings.append(
                    Finding(
                        Kind.MODIFIED,
                        f"seq {e.seq} on the topic differs from its copy archived from {pos}",
                        pos,
                        e.writer,
                        e.seq,
                    )
                )
            continue
        if since is not None and e.at < since:
            continue  # expired from the topic by its retention
        writer_runs = runs.setdefault(e.writer, [])
        if writer_runs and writer_runs[-1].last == e.seq - 1:
            run = writer_runs[-1]
            run.last, run.last_pos = e.seq, pos
        else:
            run = _Run(e.seq, e.seq, pos, pos)
            writer_runs.append(run)
        if e.action is Action.CHAIN_HEAD:
            run.heads.append(e.seq)
    for writer, writer_runs in sorted(runs.items()):
        for run in writer_runs:
            findings.append(_truncated(writer, run))
    return findings


def _truncated(writer: str, run: _Run) -> Finding:
    n = run.last - run.first + 1
    seqs = f"seq {run.first}" if n == 1 else f"seqs {run.first}-{run.last}"
    heads = ""
    if run.heads:
        heads = f", including the signed head(s) at seq {', '.join(map(str, run.heads))}"
    return Finding(
        Kind.TRUNCATED,
        f"{seqs} ({n} entries{heads}), archived from {run.first_pos} to {run.last_pos}, "
        "are no longer on the topic: deleted",
        run.first_pos,
        writer,
        run.first,
        run.last,
    )

"""What a check of the access log finds, and where: :class:`Kind`, :class:`Finding`,
:class:`Position` (shared by the chain, head and truncation checks)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Kind(StrEnum):
    MODIFIED = "modified"
    CHAIN_BROKEN = "chain_broken"
    INSERTED = "inserted"
    DELETED = "deleted"
    REORDERED = "reordered"
    UNREADABLE = "unreadable"
    DUPLICATE = "duplicate"
    # signed heads (exchange.audit.head_check) and the archive (exchange.audit.truncation)
    FORGED = "forged"
    BAD_SIGNATURE = "bad_signature"
    HEAD_MISMATCH = "head_mismatch"
    HEAD_BACKWARDS = "head_backwards"
    UNSIGNED = "unsigned"
    UNSIGNED_TAIL = "unsigned_tail"
    TRUNCATED = "truncated"


#: findings that are notices, not breaks: a producer retry, entries not signed yet
NOTICES = frozenset({Kind.DUPLICATE, Kind.UNSIGNED, Kind.UNSIGNED_TAIL})


class Position(NamedTuple):
    """Where a record sits in the log (or in an exported copy: partition 0, index)."""

    partition: int
    offset: int

    def __str__(self) -> str:
        if self.partition == 0:
            return f"offset {self.offset}"
        return f"partition {self.partition} offset {self.offset}"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    message: str
    position: Position | None = None
    writer: str | None = None
    seq: int | None = None
    last_seq: int | None = None  # for a range of deleted seqs

    @property
    def broken(self) -> bool:
        return self.kind not in NOTICES

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "writer": self.writer,
            "seq": self.seq,
            "last_seq": self.last_seq,
            "partition": self.position.partition if self.position else None,
            "offset": self.position.offset if self.position else None,
            "message": self.message,
        }

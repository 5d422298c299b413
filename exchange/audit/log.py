"""Reading the access log from ``gov.audit``: every record, decoded or said unreadable."""

from __future__ import annotations

from typing import Any

from exchange.audit.entry import AuditEntry
from exchange.audit.verify import Position
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.errors import DecodeError

Item = tuple[Position, AuditEntry | str]


def decode_record(rec: Any) -> Item:
    """An entry with its position, or the reason the record is not one."""
    pos = Position(rec.partition, rec.offset)
    if rec.value is None:
        return pos, "empty record (tombstone)"
    try:
        return pos, AuditEntry.decode(rec.value)
    except (DecodeError, ValueError, TypeError, KeyError) as exc:
        return pos, str(exc) or type(exc).__name__


async def read_log(
    bus: Connection, topic: str = topics.AUDIT, *, timeout_s: float = 300
) -> list[Item]:
    """The whole log, in log order."""
    return [decode_record(rec) for rec in await kafka.read_to_end(bus, topic, timeout_s=timeout_s)]


def entries_only(items: list[Item]) -> list[tuple[Position, AuditEntry]]:
    return [(pos, e) for pos, e in items if isinstance(e, AuditEntry)]

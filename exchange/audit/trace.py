"""The citizen's question: which departments received the records with this key, when, and why.

``exchange audit trace --resource R --key VALUE`` (the auditor) lists every
delivery of a record of R with that key: consumer, grant, purpose, fields,
masks, time, delivery topic and the record's source partition and offset (the
delivered record carries them in its ``gov-source-offset`` header), found by
the keyed hash of the key (:mod:`exchange.audit.key_hash`), never by reading
the data. ``--as DEPT --resource R`` lists what DEPT received and under which
grant and purpose: what it can prove it received lawfully.

Over the topic, every delivery entry is scanned; over the archive, the
``audit_keys`` table (hash, writer, seq, source offset; indexed by hash and
filled as entries are archived) answers in one indexed lookup and a join.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.key_hash import KEY_HASHES, parse
from exchange.avro.jsoncodec import CHINA_TZ

KEYS_TABLE = (
    "CREATE TABLE IF NOT EXISTS audit_keys (key_hash TEXT NOT NULL, writer TEXT NOT NULL, "
    "seq BIGINT NOT NULL, source_offset BIGINT NOT NULL)"
)
KEYS_INDEX = "CREATE INDEX IF NOT EXISTS audit_keys_hash ON audit_keys (key_hash)"
HEADERS = [
    "at",
    "consumer",
    "resource",
    "grant",
    "purpose",
    "fields",
    "masks",
    "delivery_topic",
    "source",
    "entry",
]


@dataclass(frozen=True)
class Receipt:
    """One delivery to one consumer: of one record (a trace by key) or of a batch."""

    at: dt.datetime
    consumer: str | None
    resource: str | None
    grant_id: str | None
    purpose: str | None
    fields: str
    masks: str
    delivery_topic: str
    source: str  # "topic partition:offset" of the record, or of the batch's offset range
    entry: str  # the audit entry's id (writer#seq)

    @classmethod
    def of(cls, e: AuditEntry, source_offset: int | None = None) -> Receipt:
        d = e.details
        where = str(source_offset) if source_offset is not None else d.get("offsets", "")
        return cls(
            at=e.at,
            consumer=e.consumer,
            resource=e.resource,
            grant_id=e.grant_id,
            purpose=e.purpose,
            fields=d.get("fields", ""),
            masks=d.get("masks", ""),
            delivery_topic=d.get("delivery_topic", ""),
            source=f"{d.get('source_topic', '')} {d.get('partition', '')}:{where}",
            entry=e.id,
        )

    def row(self) -> list[str]:
        at = self.at.astimezone(CHINA_TZ).isoformat(timespec="seconds")
        return [
            at,
            self.consumer or "",
            self.resource or "",
            self.grant_id or "",
            self.purpose or "",
            self.fields,
            self.masks,
            self.delivery_topic,
            self.source,
            self.entry,
        ]

    def to_json(self) -> dict[str, Any]:
        return dict(zip(HEADERS, self.row(), strict=True))


def _delivery(e: AuditEntry, resource: str, consumer: str | None) -> bool:
    return (
        e.action is Action.RECORDS_DELIVERED
        and e.resource == resource
        and (consumer is None or e.consumer == consumer)
    )


def by_key(
    entries: Iterable[AuditEntry], resource: str, digest: str, *, consumer: str | None = None
) -> list[Receipt]:
    """Every delivery of a record of ``resource`` whose key hashes to ``digest`` (a full scan)."""
    out: list[Receipt] = []
    for e in entries:
        if _delivery(e, resource, consumer) and digest in e.details.get(KEY_HASHES, ""):
            out.extend(Receipt.of(e, off) for h, off in parse(e.details[KEY_HASHES]) if h == digest)
    return sorted(out, key=lambda r: (r.at, r.entry, r.source))


def received(entries: Iterable[AuditEntry], resource: str, consumer: str) -> list[Receipt]:
    """Every delivery of ``resource`` to ``consumer``, one per delivery entry."""
    return sorted(
        (Receipt.of(e) for e in entries if _delivery(e, resource, consumer)),
        key=lambda r: (r.at, r.entry),
    )


# --- the archive's index -----------------------------------------------------


def key_rows(entries: Sequence[AuditEntry]) -> list[tuple[str, str, int, int]]:
    """The ``audit_keys`` rows of archived entries: (hash, writer, seq, source offset)."""
    rows: list[tuple[str, str, int, int]] = []
    for e in entries:
        if e.action is Action.RECORDS_DELIVERED and e.details.get(KEY_HASHES):
            rows.extend((h, e.writer, e.seq, off) for h, off in parse(e.details[KEY_HASHES]))
    return rows


def by_key_in_archive(
    archive: Any, resource: str, digest: str, *, consumer: str | None = None
) -> list[Receipt]:
    """:func:`by_key` over the archive, through its ``audit_keys`` index."""
    found = archive.keyed_deliveries(digest, resource, consumer)
    return sorted((Receipt.of(e, off) for off, e in found), key=lambda r: (r.at, r.entry, r.source))


def by_key_scanning_archive(archive: Any, resource: str, digest: str) -> list[Receipt]:
    """The same answer without the index: every delivery entry of the resource read (baseline)."""
    return by_key(archive.deliveries(resource), resource, digest)

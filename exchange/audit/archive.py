"""The audit archive: ``gov.audit`` followed into SQLite (default) or PostgreSQL.

Kafka keeps the log; the archive keeps it for years and answers filtered
queries fast. Two guarantees:

* **idempotent**: an entry is stored once per ``(writer, seq)`` (the primary
  key; ``ON CONFLICT DO NOTHING``), and the next topic offset to read is
  stored in the same transaction as the entries, so a restart resumes
  exactly where the last commit ended: no duplicates, no gaps.
* **faithful**: a record that reuses a ``(writer, seq)`` with other content,
  or is no audit entry at all, is kept in ``audit_anomalies`` with its
  position, so ``exchange audit verify --archive`` sees what the topic held.

Indexes on ``(resource, at)``, ``(consumer, at)``, ``(provider, at)``,
``(actor, at)``, ``(action, at)``, ``(decision, at)``, ``at``, ``grant_id`` and
``application_id`` serve the filters of :class:`~exchange.audit.query.Filter`;
``benchmarks/audit_query.py`` measures them on a million entries.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from exchange.audit.entry import AuditEntry
from exchange.audit.query import Filter, decisions
from exchange.audit.retention import ANCHORS_TABLE
from exchange.audit.trace import KEYS_INDEX, KEYS_TABLE, key_rows
from exchange.audit.verify import Position
from exchange.errors import ExchangeError

FIELDS = [
    "writer",
    "seq",
    "id",
    "prev_hash",
    "hash",
    "at",
    "actor",
    "action",
    "resource",
    "consumer",
    "provider",
    "decision",
    "reason",
    "grant_id",
    "application_id",
    "purpose",
    "instance",
    "details",
]
COLUMNS = [*FIELDS, "log_partition", "log_offset"]
INDEXES = {
    "audit_at": "at",
    "audit_resource_at": "resource, at",
    "audit_consumer_at": "consumer, at",
    "audit_provider_at": "provider, at",
    "audit_actor_at": "actor, at",
    "audit_action_at": "action, at",
    "audit_decision_at": "decision, at",
    "audit_grant": "grant_id",
    "audit_application": "application_id",
    "audit_position": "log_partition, log_offset",
}
Row = tuple[Any, ...]
# SQL below is built from these constant names only; every value is a bound parameter
COLUMN_LIST = ", ".join(COLUMNS)
INSERT_SQL = f"INSERT INTO audit_entries ({COLUMN_LIST}) VALUES ({', '.join('?' for _ in COLUMNS)})"  # noqa: S608
SELECT_SQL = f"SELECT {COLUMN_LIST} FROM audit_entries"  # noqa: S608
KEYS_INSERT = "INSERT INTO audit_keys (key_hash, writer, seq, source_offset) VALUES (?, ?, ?, ?)"
_KEYED_SQL = (
    "SELECT k.source_offset, "  # noqa: S608
    + ", ".join(f"e.{c}" for c in COLUMNS)
    + " FROM audit_keys k JOIN audit_entries e ON e.writer = k.writer AND e.seq = k.seq "
    "WHERE k.key_hash = ? AND e.resource = ? AND e.action = 'RECORDS_DELIVERED'"
)


class ArchiveError(ExchangeError):
    """The archive database cannot be opened or used."""


class Archive:
    """An archive database; :func:`open_archive` picks SQLite or PostgreSQL from the URL."""

    dialect = ""
    at_type = ""
    json_type = "TEXT"

    def __init__(self, conn: Any, url: str) -> None:
        self.conn = conn
        self.url = url

    # --- dialect ---------------------------------------------------------------

    def sql(self, text: str) -> str:
        return text

    def at_param(self, at: dt.datetime) -> Any:
        raise NotImplementedError

    def at_value(self, value: Any) -> dt.datetime:
        raise NotImplementedError

    def details_param(self, details: dict[str, str]) -> Any:
        return json.dumps(details, ensure_ascii=False, sort_keys=True)

    def details_value(self, value: Any) -> dict[str, str]:
        return dict(json.loads(value)) if isinstance(value, str) else dict(value)

    def transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def bulk_insert(self, rows: Iterable[Row]) -> None:
        """Append rows fast (no conflict check): for loading test and benchmark data."""
        raise NotImplementedError

    # --- schema ----------------------------------------------------------------

    def setup(self, *, indexes: bool = True) -> None:
        """Create the tables (and indexes) if they do not exist yet."""
        cols = ", ".join(
            f"{c} {self._type(c)}{' NOT NULL' if c not in _NULLABLE else ''}" for c in COLUMNS
        )
        with self.transaction() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS audit_entries ({cols}, PRIMARY KEY (writer, seq))"
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS audit_progress (topic TEXT NOT NULL, "
                "log_partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, "
                "PRIMARY KEY (topic, log_partition))"
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS audit_anomalies (log_partition INTEGER NOT NULL, "
                "log_offset BIGINT NOT NULL, kind TEXT NOT NULL, writer TEXT, seq BIGINT, "
                f"note TEXT NOT NULL, entry {self.json_type}, "
                "PRIMARY KEY (log_partition, log_offset))"
            )
            cur.execute(KEYS_TABLE)  # record-key hashes of deliveries (exchange.audit.trace)
            cur.execute(ANCHORS_TABLE)  # where pruned chains resume (exchange.audit.retention)
        if indexes:
            self.create_indexes()

    def create_indexes(self) -> None:
        with self.transaction() as cur:
            for name, cols in INDEXES.items():
                cur.execute(f"CREATE INDEX IF NOT EXISTS {name} ON audit_entries ({cols})")
            cur.execute(KEYS_INDEX)
        self.analyze()

    def drop_indexes(self) -> None:
        with self.transaction() as cur:
            for name in [*INDEXES, "audit_keys_hash"]:
                cur.execute(f"DROP INDEX IF EXISTS {name}")

    def analyze(self) -> None:
        with self.transaction() as cur:
            cur.execute("ANALYZE audit_entries")
            cur.execute("ANALYZE audit_keys")

    def _type(self, column: str) -> str:
        if column == "at":
            return self.at_type
        if column == "details":
            return self.json_type
        if column == "log_partition":
            return "INTEGER"
        return "BIGINT" if column in ("seq", "log_offset") else "TEXT"

    # --- writing ---------------------------------------------------------------

    def row(self, pos: Position, e: AuditEntry) -> Row:
        d = e.to_avro()
        d["at"] = self.at_param(e.at)
        d["details"] = self.details_param(e.details)
        return (*(d[f] for f in FIELDS), pos.partition, pos.offset)

    def store(
        self,
        topic: str,
        items: Sequence[tuple[Position, AuditEntry | str]],
        next_offsets: dict[int, int],
    ) -> int:
        """Store a batch and the offsets to resume from, in one transaction; returns rows added."""
        entries = [(p, e) for p, e in items if isinstance(e, AuditEntry)]
        with self.transaction() as cur:
            added = 0
            if entries:
                cur.executemany(
                    self.sql(INSERT_SQL + " ON CONFLICT (writer, seq) DO NOTHING"),
                    [self.row(p, e) for p, e in entries],
                )
                added = max(cur.rowcount, 0)
            if added < len(entries):
                self._keep_conflicts(cur, entries)
            new = self._new_entries(cur, entries) if added < len(entries) else entries
            keys = key_rows([e for _, e in new])
            if keys:
                cur.executemany(self.sql(KEYS_INSERT), keys)
            for pos, item in items:
                if isinstance(item, str):
                    self._anomaly(cur, pos, "unreadable", None, None, item, None)
            for partition, offset in next_offsets.items():
                cur.execute(
                    self.sql(
                        "INSERT INTO audit_progress (topic, log_partition, next_offset) "
                        "VALUES (?, ?, ?) ON CONFLICT (topic, log_partition) "
                        "DO UPDATE SET next_offset = excluded.next_offset"
                    ),
                    (topic, partition, offset),
                )
        return added

    def _new_entries(
        self, cur: Any, entries: list[tuple[Position, AuditEntry]]
    ) -> list[tuple[Position, AuditEntry]]:
        """Of the entries of a batch, those this very batch archived (their keys not indexed yet)."""
        out = []
        for pos, e in entries:
            cur.execute(
                self.sql(
                    "SELECT log_partition, log_offset FROM audit_entries WHERE writer = ? AND seq = ?"
                ),
                (e.writer, e.seq),
            )
            stored = cur.fetchone()
            if stored is not None and (stored[0], stored[1]) == (pos.partition, pos.offset):
                out.append((pos, e))
        return out

    def _keep_conflicts(self, cur: Any, entries: list[tuple[Position, AuditEntry]]) -> None:
        """Of entries not inserted, keep those whose (writer, seq) holds other content."""
        for pos, e in entries:
            cur.execute(
                self.sql(
                    "SELECT hash, log_partition, log_offset FROM audit_entries "
                    "WHERE writer = ? AND seq = ?"
                ),
                (e.writer, e.seq),
            )
            stored = cur.fetchone()
            if stored is None or (stored[1], stored[2]) == (pos.partition, pos.offset):
                continue  # inserted by this very batch
            if stored[0] != e.hash:
                note = f"seq {e.seq} of {e.writer} already archived from offset {stored[2]}"
                entry = json.dumps(e.to_json(), ensure_ascii=False)
                self._anomaly(cur, pos, "conflict", e.writer, e.seq, note, entry)

    def _anomaly(
        self,
        cur: Any,
        pos: Position,
        kind: str,
        writer: str | None,
        seq: int | None,
        note: str,
        entry: str | None,
    ) -> None:
        cur.execute(
            self.sql(
                "INSERT INTO audit_anomalies (log_partition, log_offset, kind, writer, seq, note, "
                "entry) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (log_partition, log_offset) DO NOTHING"
            ),
            (pos.partition, pos.offset, kind, writer, seq, note, entry),
        )

    # --- reading ---------------------------------------------------------------

    def progress(self, topic: str) -> dict[int, int]:
        """Next offset to archive, per partition of ``topic``."""
        with self.transaction() as cur:
            cur.execute(
                self.sql("SELECT log_partition, next_offset FROM audit_progress WHERE topic = ?"),
                (topic,),
            )
            return {int(p): int(o) for p, o in cur.fetchall()}

    def count(self) -> int:
        with self.transaction() as cur:
            cur.execute("SELECT count(*) FROM audit_entries")
            return int(cur.fetchone()[0])

    def where(self, flt: Filter) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if flt.dept is not None:
            conds.append("(actor = ? OR consumer = ? OR provider = ?)")
            params += [flt.dept] * 3
        if flt.decision is not None:  # "denied" finds every refusal
            words = sorted(decisions(flt.decision))
            conds.append(f"decision IN ({', '.join('?' for _ in words)})")
            params += words
        for column, value in (
            ("resource", flt.resource),
            ("action", flt.action.value if flt.action else None),
            ("grant_id", flt.grant),
        ):
            if value is not None:
                conds.append(f"{column} = ?")
                params.append(value)
        if flt.purpose is not None:
            escaped = flt.purpose.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append("purpose LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        if flt.since is not None:
            conds.append("at >= ?")
            params.append(self.at_param(flt.since))
        if flt.until is not None:
            conds.append("at < ?")
            params.append(self.at_param(flt.until))
        return (" WHERE " + " AND ".join(conds) if conds else ""), params

    def query(
        self, flt: Filter, *, limit: int | None = None, offset: int = 0
    ) -> list[tuple[Position, AuditEntry]]:
        """Matching entries, newest first, one page."""
        where, params = self.where(flt)
        sql = SELECT_SQL + where + " ORDER BY at DESC, log_partition DESC, log_offset DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        elif offset:
            raise ArchiveError("an offset needs a limit")
        with self.transaction() as cur:
            cur.execute(self.sql(sql), params)
            return [self._entry(r) for r in cur.fetchall()]

    def keyed_deliveries(
        self, digest: str, resource: str, consumer: str | None = None
    ) -> list[tuple[int, AuditEntry]]:
        """(source offset, delivery entry) of every record of ``resource`` whose key hash is
        ``digest``, through the ``audit_keys`` index (see :mod:`exchange.audit.trace`)."""
        sql, params = _KEYED_SQL, [digest, resource]
        if consumer is not None:
            sql += " AND e.consumer = ?"
            params.append(consumer)
        with self.transaction() as cur:
            cur.execute(self.sql(sql), params)
            return [(int(r[0]), self._entry(r[1:])[1]) for r in cur.fetchall()]

    def deliveries(self, resource: str) -> list[AuditEntry]:
        """Every delivery entry of ``resource`` (the scan a trace without the index makes)."""
        sql = SELECT_SQL + " WHERE action = 'RECORDS_DELIVERED' AND resource = ?"
        with self.transaction() as cur:
            cur.execute(self.sql(sql), [resource])
            return [self._entry(r)[1] for r in cur.fetchall()]

    def _entry(self, r: Row) -> tuple[Position, AuditEntry]:
        d = dict(zip(COLUMNS, r, strict=True))
        pos = Position(int(d.pop("log_partition")), int(d.pop("log_offset")))
        d["at"] = self.at_value(d["at"])
        d["details"] = self.details_value(d["details"])
        return pos, AuditEntry.from_avro(d)

    def log(self, *, batch: int = 10_000) -> Iterator[tuple[Position, AuditEntry | str]]:
        """Every archived record in log order, anomalies included (for ``verify``)."""
        anomalies: dict[Position, AuditEntry | str] = {}
        with self.transaction() as cur:
            cur.execute("SELECT log_partition, log_offset, note, entry FROM audit_anomalies")
            for p, o, note, entry in cur.fetchall():
                pos = Position(int(p), int(o))
                if entry is None:
                    anomalies[pos] = note
                else:
                    anomalies[pos] = AuditEntry.from_json(
                        json.loads(entry) if isinstance(entry, str) else entry
                    )
        pending = sorted(anomalies.items())
        last = Position(-1, -1)
        while True:
            with self.transaction() as cur:
                cur.execute(
                    self.sql(
                        SELECT_SQL + " WHERE (log_partition > ?) OR (log_partition = ? AND "
                        "log_offset > ?) ORDER BY log_partition, log_offset LIMIT ?"
                    ),
                    (last.partition, last.partition, last.offset, batch),
                )
                rows = [self._entry(r) for r in cur.fetchall()]
            for pos, e in rows:
                while pending and pending[0][0] < pos:
                    yield pending.pop(0)
                yield pos, e
            if len(rows) < batch:
                break
            last = rows[-1][0]
        yield from pending

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NULLABLE = {
    "resource",
    "consumer",
    "provider",
    "reason",
    "grant_id",
    "application_id",
    "purpose",
}

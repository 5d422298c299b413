"""One batch of a database sink: upserts, deletions and retractions, applied in order.

What a delivery topic carries, per partition in order, and what the sink does:

* a record: upsert its row (by ``gov_key``, the Kafka key);
* a deletion (a tombstone: the provider deleted the record, or it left the
  consumer's row filter): delete the row of its key;
* a grant's retraction (a tombstone keyed ``gov-retraction:<grant id>``, headers
  in :mod:`exchange.bus.envelope`): the rows received on that partition so far
  are deleted (rule ``delete``) or kept frozen, marked with the grant and the
  time (``gov_retracted_grant``, ``gov_retracted_at``; rule ``keep-frozen``).

A key always travels on one partition (``gov_partition`` is stored with each
row), so a retraction on partition *p* touches the rows that came before it on
*p* and nothing delivered on another partition after the grant ended. Rows
written before the sink kept partitions (``gov_partition`` NULL) are treated
as belonging to every partition.

:class:`SinkBatch` folds one fetched batch into: table-wide statements first
(retractions, in their order), then the deletions, then the upserts, each key's
last word winning. That order gives the same table as applying every record
one by one, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from connectors.sql import Database

KEY, RECORD_ID_COLUMN, RECEIVED_AT = "gov_key", "gov_record_id", "gov_received_at"
PARTITION, RETRACTED_GRANT, RETRACTED_AT = (
    "gov_partition",
    "gov_retracted_grant",
    "gov_retracted_at",
)
#: the columns the sink adds to every table, in the order of a row's first values
TECHNICAL = (KEY, RECORD_ID_COLUMN, RECEIVED_AT, PARTITION, RETRACTED_GRANT, RETRACTED_AT)
#: the technical columns added after the first release: added to older tables at start
LATER = (PARTITION, RETRACTED_GRANT, RETRACTED_AT)
_GRANT, _AT = TECHNICAL.index(RETRACTED_GRANT), TECHNICAL.index(RETRACTED_AT)
_PARTITION = TECHNICAL.index(PARTITION)


@dataclass
class SinkBatch:
    """The effect of one fetched batch on the sink's table, built record by record."""

    #: key -> the row to upsert, or None to delete the key's row
    rows: dict[str, tuple[Any, ...] | None] = field(default_factory=dict)
    #: ("delete", partition) or ("freeze", partition, grant id, when), in order
    retractions: list[tuple[Any, ...]] = field(default_factory=list)
    deleted: int = 0

    def upsert(self, row: tuple[Any, ...]) -> None:
        self.rows.pop(row[0], None)  # keep the last version of a key, in order
        self.rows[row[0]] = row

    def delete(self, key: str) -> None:
        self.rows.pop(key, None)
        self.rows[key] = None

    def retract(self, partition: int, at_rest: str, grant_id: str, at: Any) -> None:
        """A grant's retraction on ``partition``: its rows so far deleted or frozen."""
        if at_rest == "keep-frozen":
            self.retractions.append(("freeze", partition, grant_id, at))
            for key, row in self.rows.items():
                if row is not None and row[_PARTITION] == partition and row[_GRANT] is None:
                    marked = list(row)
                    marked[_GRANT], marked[_AT] = grant_id, at
                    self.rows[key] = tuple(marked)
            return
        # delete (the default, and what an unknown rule falls back to: the safe side)
        self.retractions.append(("delete", partition))
        for key in [
            k for k, r in self.rows.items() if r is not None and r[_PARTITION] == partition
        ]:
            del self.rows[key]

    async def apply(self, db: Database, table: str, columns: list[str]) -> int:
        """Write the batch in the open transaction; returns the rows upserted."""
        q = db.quote
        t = q(table)
        in_partition = f"({q(PARTITION)} = %s OR {q(PARTITION)} IS NULL)"
        for op in self.retractions:
            if op[0] == "delete":
                await db.execute(f"DELETE FROM {t} WHERE {in_partition}", (op[1],))  # noqa: S608
            else:
                _, partition, grant_id, at = op
                await db.execute(
                    f"UPDATE {t} SET {q(RETRACTED_GRANT)} = %s, {q(RETRACTED_AT)} = %s "  # noqa: S608
                    f"WHERE {in_partition} AND {q(RETRACTED_GRANT)} IS NULL",
                    (grant_id, at, partition),
                )
        gone = [(k,) for k, r in self.rows.items() if r is None]
        if gone:
            await db.executemany(f"DELETE FROM {t} WHERE {q(KEY)} = %s", gone)  # noqa: S608
            self.deleted += len(gone)
        width = len(columns)  # rows of an older schema lack the columns added since
        upserts = [
            r if len(r) == width else r + (None,) * (width - len(r))
            for r in self.rows.values()
            if r is not None
        ]
        if upserts:
            await db.upsert_rows(table, columns, KEY, upserts)
        return len(upserts)


def stamp_type(db: Database) -> str:
    """The column type of the sink's timestamps in ``db``'s dialect."""
    return "timestamptz" if db.dialect == "postgresql" else "DATETIME(6)"


def later_column_ddl(db: Database, name: str) -> str:
    """The type of a technical column of :data:`LATER` (all nullable)."""
    if name == PARTITION:
        return "INTEGER NULL"
    if name == RETRACTED_GRANT:
        return "VARCHAR(64) NULL"
    return f"{stamp_type(db)} NULL"


def now_for(db: Database) -> Any:
    """The current time as ``db`` stores the sink's timestamps."""
    now = dt.datetime.now(dt.UTC)
    if db.dialect == "mysql":
        return now.astimezone(db.target.timezone).replace(tzinfo=None)
    return now

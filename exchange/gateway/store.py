"""The latest-state store: the newest record of every key of every source topic, in SQLite.

Why SQLite: it is in the standard library (nothing to install or run), a
lookup by primary key takes tens of microseconds (cheap enough to do on the
event loop), a write transaction is atomic, and in WAL mode readers never
wait for the writer. The rows and the offset each partition was read up to
are written in one transaction, so after a crash the store is either as it
was before a batch or after it, and reading resumes where the rows end. A
store that fails its integrity check, or was written by another version,
is deleted and rebuilt from the topics (the topics are the truth; the store
is a cache of them). PostgreSQL is not supported yet.

One process writes a store file (the materialiser); the gateway's worker
processes open the same file as readers (``reader=True``): WAL mode lets them
read while it writes, and each read sees every transaction committed before it.
A reader never checks, rebuilds or writes the file: the writer did so before
the readers started.

Records are kept as they arrived (framed Avro bytes): views are applied at
read time, so a policy change needs no rewrite of the store. The file also counts
the source records written into it since it was made (``meta``, in the same
transaction as each batch), which :meth:`LatestStore.stats` reports to ``/metrics``
whichever process asks.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from exchange.errors import ExchangeError

log = logging.getLogger(__name__)

#: changes when the tables change: a store of another format is rebuilt
FORMAT = "gateway-store-1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (topic, key)
) WITHOUT ROWID;
"""


#: pages a reading connection keeps (KiB; SQLite's default is 2 MiB) and maps (bytes): a
#: lookup of a random key then reads no page through a system call (8.6 -> 7.3 us a lookup
#: of 20,000 records on the 2-core machine)
READ_CACHE_KIB = 32 * 1024
READ_MMAP_BYTES = 256 * 1024 * 1024


def _read_fast(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}")


class StoreError(ExchangeError):
    """The store file cannot be opened or written."""


@dataclass(frozen=True)
class Change:
    """One source record: the newest value of ``key`` (None: a tombstone, the key is deleted)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes | None


class LatestStore:
    """One SQLite file; :meth:`get` from the event loop, :meth:`apply` from one writer thread.

    ``reader=True``: open a store another process writes, for reading only.
    """

    def __init__(self, path: Path, *, reader: bool = False) -> None:
        self.path = path
        self.rebuilt = False  # True when this open found the file unusable and started over
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        try:
            if reader:
                if not path.exists():
                    raise StoreError(f"the store {path} does not exist: its writer makes it")
                self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._reader.execute("PRAGMA query_only=1")
                _read_fast(self._reader)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._open_checked()
            self._reader = self._connect()
            _read_fast(self._reader)
        except sqlite3.Error as exc:
            raise StoreError(f"the store {path} cannot be opened: {exc}") from exc

    @property
    def _w(self) -> sqlite3.Connection:
        if self._writer is None:
            raise StoreError(f"the store {self.path} is open for reading only")
        return self._writer

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a process crash loses nothing committed; a power cut may lose
        # the last transactions, which the offsets stored with them make the reader read again
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _open_checked(self) -> sqlite3.Connection:
        if self.path.exists():
            reason = self._unusable()
            if reason is not None:
                log.warning("store %s %s: rebuilding it from the topics", self.path, reason)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                self.rebuilt = True
        conn = self._connect()
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('applied', '0')")
        return conn

    def _unusable(self) -> str | None:
        """Why the existing file cannot be used (None: it can)."""
        try:
            conn = sqlite3.connect(self.path)
            try:
                check = conn.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    return f"fails its integrity check ({check[0] if check else 'no answer'})"
                row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return f"cannot be read ({exc})"
        if row is None or row[0] != FORMAT:
            return f"was written in another format ({row[0] if row else 'none'})"
        return None

    def close(self) -> None:
        self._reader.close()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()

    def positions(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the next offset to read."""
        rows = self._reader.execute("SELECT topic, partition, next_offset FROM positions")
        return {(t, p): o for t, p, o in rows}

    def get(self, topic: str, key: bytes) -> bytes | None:
        row = self._reader.execute(
            "SELECT value FROM records WHERE topic = ? AND key = ?", (topic, key)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def count(self, topic: str | None = None) -> int:
        if topic is None:
            row = self._reader.execute("SELECT count(*) FROM records").fetchone()
        else:
            row = self._reader.execute(
                "SELECT count(*) FROM records WHERE topic = ?", (topic,)
            ).fetchone()
        return int(row[0])

    def stats(self) -> tuple[int, int]:
        """(records held, source records written since the file was made): for the gauges.

        On a connection of its own, so that it may run in a thread while the event loop
        reads (counting the rows of a large store takes a while).
        """
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        try:
            (records,) = conn.execute("SELECT count(*) FROM records").fetchone()
            row = conn.execute("SELECT value FROM meta WHERE name = 'applied'").fetchone()
        finally:
            conn.close()
        return int(records), int(row[0]) if row is not None else 0

    def apply(self, changes: Sequence[Change]) -> None:
        """Write a batch and the positions after it, in one transaction (blocking: a thread)."""
        if not changes:
            return
        ends: dict[tuple[str, int], int] = {}
        for c in changes:
            ends[(c.topic, c.partition)] = max(ends.get((c.topic, c.partition), 0), c.offset + 1)
        with self._write_lock:
            conn = self._w
            try:
                conn.execute("BEGIN IMMEDIATE")
                # in offset order per key: a later record of the same key wins
                for change in changes:
                    if change.value is None:
                        conn.execute(
                            "DELETE FROM records WHERE topic = ? AND key = ?",
                            (change.topic, change.key),
                        )
                    else:
                        row = (c := change).topic, c.key, c.value, c.partition, c.offset
                        conn.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)", row)
                conn.executemany(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                    [(t, p, o) for (t, p), o in ends.items()],
                )
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE name = 'applied'",
                    (len(changes),),
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"the store {self.path} could not be written: {exc}") from exc

    def forget_topics(self, keep: Iterable[str]) -> None:
        """Drop the rows and positions of topics not in ``keep`` (resources left the catalog)."""
        kept = set(keep)
        with self._write_lock:
            conn = self._w
            stored = {t for (t,) in conn.execute("SELECT DISTINCT topic FROM positions")}
            for topic in stored - kept:
                conn.execute("DELETE FROM records WHERE topic = ?", (topic,))
                conn.execute("DELETE FROM positions WHERE topic = ?", (topic,))

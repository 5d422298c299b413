"""What a quota count costs the gateway: the shared table against SQLite, in one run.

``python -m exchange.dev.quota_cost [--counts N]``

Counts N requests of one grant (a quota far above N, so none is refused) through
:class:`~exchange.gateway.quota.Quotas`, three ways: its table in memory (one process
alone), its table in a file shared by processes (``mmap`` and ``flock``: what the
gateway's workers use), and the same count kept in an SQLite file in WAL mode with
``synchronous=OFF`` (a ``BEGIN IMMEDIATE`` transaction reading and upserting the row).
Then two processes count N each at once in the same file, both ways, and the totals
are checked: 2N, no count lost. Printed: microseconds per count and the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from exchange.gateway.quota import Quotas
from exchange.gateway.quota_table import QuotaTable
from exchange.sharing.records import Grant

_GRANT = Grant(
    "GR-bench", "APP-bench", "hrss", "population_basic", ("name",), "bench", None, {}, None,
    dt.datetime.now(dt.UTC),
)  # fmt: skip
GRANT = replace(_GRANT, quota_per_second=10**9, quota_per_day=10**9)


class SqliteQuotas:
    """The same count as :class:`Quotas` makes, kept in an SQLite table (for comparison)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS quota (grant_id TEXT PRIMARY KEY, second INTEGER, "
            "in_second INTEGER, day INTEGER, in_day INTEGER)"
        )

    def take(self, grant: Grant) -> None:
        second = int(time.time())
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        row = c.execute(
            "SELECT second, in_second, in_day FROM quota WHERE grant_id = ?", (grant.id,)
        ).fetchone()
        in_second = row[1] + 1 if row is not None and row[0] == second else 1
        in_day = row[2] + 1 if row is not None else 1
        c.execute(
            "INSERT INTO quota VALUES (?, ?, ?, 0, ?) ON CONFLICT (grant_id) DO UPDATE SET "
            "second = excluded.second, in_second = excluded.in_second, in_day = excluded.in_day",
            (grant.id, second, in_second, in_day),
        )
        c.execute("COMMIT")

    def total(self) -> int:
        row = self.conn.execute("SELECT in_day FROM quota").fetchone()
        return int(row[0]) if row else 0


def _timed(take: Callable[[Grant], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        take(GRANT)
    return (time.perf_counter() - started) / n * 1e6


def _count(kind: str, path: str, n: int, go: Any, took: Any) -> None:
    counter = Quotas(Path(path)) if kind == "table" else SqliteQuotas(Path(path))
    go.wait()  # both processes count at the same time
    took.put(_timed(counter.take, n))


def _two_processes(kind: str, path: Path, n: int) -> float:
    """µs per count in each of two processes counting at once (the slower one's)."""
    ctx = multiprocessing.get_context("spawn")
    go, took = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_count, args=(kind, str(path), n, go, took)) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(2)  # both started (a spawned interpreter takes about a second)
    go.set()
    slowest = max(float(took.get(timeout=300)) for _ in procs)
    for p in procs:
        p.join()
    return slowest


def _table_total(path: Path) -> int:
    today = dt.date.today().toordinal()
    seen: list[int] = []
    QuotaTable(path).update(GRANT.id, today, lambda c: seen.append(c.in_day))
    return seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, default=50_000)
    n = parser.parse_args().counts
    work = Path(tempfile.mkdtemp(prefix="quota-cost-"))
    memory = _timed(Quotas().take, n)
    table = _timed(Quotas(work / "one.quotas").take, n)
    sqlite = _timed(SqliteQuotas(work / "one.sqlite").take, n)
    table2 = _two_processes("table", work / "two.quotas", n)
    sqlite2 = _two_processes("sqlite", work / "two.sqlite", n)
    print(f"{n} counts of one grant (two processes: {n} each), µs per count (wall time)")
    print(f"  table in memory (one process)      {memory:8.1f}")
    print(f"  table in a file (mmap + flock)     {table:8.1f}")
    print(f"  SQLite (WAL, synchronous=OFF)      {sqlite:8.1f}")
    print(
        f"  two processes at once, file table  {table2:8.1f}  total {_table_total(work / 'two.quotas')}"
    )
    print(
        f"  two processes at once, SQLite      {sqlite2:8.1f}  total {SqliteQuotas(work / 'two.sqlite').total()}"
    )
    print(
        f"SQLite / file table: {sqlite / table:.1f}x alone, {sqlite2 / table2:.1f}x two processes"
    )


if __name__ == "__main__":
    main()

"""Filtered queries over a million archived audit entries: indexed vs. a full scan.

Fills an archive (SQLite by default, or ``--to postgresql://...``) with
synthetic entries shaped like a province's traffic (57 departments, 300
resources, 3,600 grants, mostly delivery batches, a year of time), runs a
few filtered queries once *before* the indexes exist (the full-scan
baseline, in the same run) and then with them, and prints both times and
their ratio::

    python benchmarks/audit_query.py                       # SQLite, temp file
    python benchmarks/audit_query.py --to postgresql       # a throwaway PostgreSQL
    python benchmarks/audit_query.py --to postgresql://USER@HOST:PORT/DB
    python benchmarks/audit_query.py --entries 100000      # quicker

The entries are synthetic: their hashes are placeholders, not a chain (this
measures the database, not ``verify``). A PostgreSQL run works in a schema of its own,
dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from exchange.audit.archive import Archive
from exchange.audit.archive_url import open_archive
from exchange.audit.entry import Action, from_millis, to_millis
from exchange.audit.query import Filter

DEPARTMENTS = [f"dept{i:02d}" for i in range(57)]
RESOURCES = [(f"res{i:03d}", DEPARTMENTS[i % 57]) for i in range(300)]
PURPOSES = [f"用途 {i}: 办理事项 service {i}" for i in range(200)]
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN_S = 365 * 86400
ACTIONS = [
    (Action.RECORDS_DELIVERED, 85),
    (Action.SUBSCRIPTION_GRANTED, 3),
    (Action.SUBSCRIPTION_DENIED, 2),
    (Action.APPLICATION_SUBMITTED, 2),
    (Action.APPLICATION_APPROVED, 2),
    (Action.COMMAND_REFUSED, 2),
    (Action.RECORD_DEAD_LETTERED, 2),
    (Action.GRANT_REVOKED, 1),
    (Action.GRANT_EXPIRED, 1),
]


def rows(archive: Archive, n: int, seed: int = 1) -> Iterator[tuple[object, ...]]:
    rnd = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    actions = [a for a, w in ACTIONS for _ in range(w)]
    grants = [
        (f"GR-{i:05d}", RESOURCES[rnd.randrange(300)], rnd.choice(DEPARTMENTS)) for i in range(3600)
    ]
    writers = [f"router-host{i}-{1000 + i}-{i:06x}" for i in range(8)]
    details = [
        archive.details_param({"record_count": str(c), "partition": str(p)})
        for c in range(1, 501)
        for p in range(3)
    ]
    step_ms = SPAN_S * 1000 / n
    start_ms = to_millis(START)
    sqlite = archive.dialect == "sqlite"
    for i in range(n):
        action = actions[int(rnd.random() * len(actions))]
        gid, (res, provider), consumer = grants[int(rnd.random() * 3600)]
        conditional = rnd.random() < 0.6
        at_ms = start_ms + int(i * step_ms)
        delivered = action is Action.RECORDS_DELIVERED
        w = writers[i % 8]
        seq = i // 8
        yield (
            w,
            seq,
            f"{w}#{seq}",
            f"{i - 1:064x}",
            f"{i:064x}",
            at_ms if sqlite else from_millis(at_ms),
            "router" if delivered else consumer,
            action.value,
            res,
            consumer,
            provider,
            "delivered" if delivered else "x",
            "reason" if action in (Action.COMMAND_REFUSED, Action.SUBSCRIPTION_DENIED) else None,
            gid if conditional else None,
            None,
            PURPOSES[int(gid[3:]) % 200] if conditional else None,
            "host-1",
            details[int(rnd.random() * 1500)],
            0,
            i,
        )


def queries() -> list[tuple[str, Filter]]:
    month = (dt.datetime(2026, 6, 1, tzinfo=dt.UTC), dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
    return [
        ("resource", Filter(resource="res123")),
        ("dept (actor, consumer or provider)", Filter(dept="dept17")),
        ("action in one month", Filter(action=Action.COMMAND_REFUSED, since=month[0], until=month[1])),
        ("grant", Filter(grant="GR-01234")),
        ("dept + resource + month", Filter(dept="dept05", resource="res062", since=month[0], until=month[1])),
        ("decision denied-like + resource", Filter(resource="res200", action=Action.SUBSCRIPTION_DENIED)),
        ("purpose substring, 2 months", Filter(purpose="service 42", since=month[0], until=month[1] + dt.timedelta(days=30))),
    ]  # fmt: skip


def timed(archive: Archive, flt: Filter, limit: int, repeat: int) -> tuple[float, int]:
    """Median seconds of ``repeat`` runs, and the number of entries returned."""
    times = []
    n = 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = len(archive.query(flt, limit=limit))
        times.append(time.perf_counter() - t)
    return statistics.median(times), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--to",
        help="archive URL (default: a temporary SQLite file); 'postgresql' alone starts a "
        "throwaway PostgreSQL for the run (Debian package postgresql)",
    )
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--limit", type=int, default=100, help="page size of every query")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    cleanup = None
    tmp = None
    url = args.to
    server = None
    if url == "postgresql":
        from exchange.dev.databases import ThrowawayPostgres

        server = ThrowawayPostgres(fast=False).start()  # durable settings: this measures a database
        url = server.url
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{tmp.name}/audit-bench.sqlite"
    elif url.startswith(("postgresql://", "postgres://")):
        import psycopg

        schema = f"audit_bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg.connect(url, autocommit=True)
        admin.execute(f"CREATE SCHEMA {schema}")
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()

    try:
        archive = open_archive(url)
    except Exception:
        if cleanup:
            cleanup()
        if server:
            server.stop()
        raise
    try:
        archive.drop_indexes()  # loaded without them; the full-scan baseline runs first
        t = time.perf_counter()
        archive.bulk_insert(rows(archive, args.entries))
        archive.analyze()
        load_s = time.perf_counter() - t
        print(
            f"{archive.dialect}: {archive.count():,} entries loaded in {load_s:.1f} s", flush=True
        )

        results = []
        for name, flt in queries():
            scan_s, n = timed(archive, flt, args.limit, repeat=1)
            results.append({"query": name, "rows": n, "full_scan_ms": scan_s * 1000})
        t = time.perf_counter()
        archive.create_indexes()
        index_s = time.perf_counter() - t
        print(f"indexes built in {index_s:.1f} s\n", flush=True)
        for r, (_, flt) in zip(results, queries(), strict=True):
            indexed_s, n = timed(archive, flt, args.limit, repeat=5)
            assert n == r["rows"], "the indexed query must return what the scan returned"
            r["indexed_ms"] = indexed_s * 1000
            r["ratio"] = r["full_scan_ms"] / max(r["indexed_ms"], 1e-3)

        print(
            f"{'query (newest ' + str(args.limit) + ')':<38} {'rows':>5} {'full scan':>11} {'indexed':>10} {'ratio':>8}"
        )
        for r in results:
            print(
                f"{r['query']:<38} {r['rows']:>5} {r['full_scan_ms']:>9.1f}ms "
                f"{r['indexed_ms']:>8.1f}ms {r['ratio']:>7.0f}x"
            )
        worst = max(r["indexed_ms"] for r in results)
        print(f"\nslowest indexed query: {worst:.1f} ms (target: under 1000 ms)")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"dialect": archive.dialect, "entries": args.entries, "load_s": load_s,
                     "index_s": index_s, "queries": results},
                    indent=2, ensure_ascii=False,
                )
            )  # fmt: skip
        return 0 if worst < 1000 else 1
    finally:
        archive.close()
        if cleanup:
            cleanup()
        if tmp:
            tmp.cleanup()
        if server:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

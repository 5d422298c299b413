"""``exchange audit trace`` over an archive of a million deliveries: key index vs. a full scan.

Fills an archive (SQLite by default, or ``--to postgresql[://...]``) with
delivery entries of one resource carrying ``--deliveries`` record deliveries
(``--per-entry`` records an entry, as a settling round merges them), their keys
hashed as the router hashes them, to three to six consumers per key. Then, in
the same run:

* the full scan: every delivery entry of the resource read and its key hashes
  searched (what a trace without the index, or over the topic, does);
* the indexed trace: the ``audit_keys`` lookup and join ``exchange audit trace
  --archive`` makes;

and prints both times, their ratio, and what the index costs: bytes of
``key_hashes`` per delivery in the log, rows and bytes of the key index::

    python benchmarks/audit_trace.py                        # SQLite, temp file
    python benchmarks/audit_trace.py --to postgresql        # a throwaway PostgreSQL
    python benchmarks/audit_trace.py --deliveries 100000    # quicker

Entries are synthetic (placeholder hashes: this measures the database, not verify).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exchange.audit import trace
from exchange.audit.archive import Archive
from exchange.audit.archive_url import open_archive, sqlite_path
from exchange.audit.entry import Action, from_millis, to_millis
from exchange.audit.key_hash import KEY_HASHES, KeyHasher

RESOURCE = "birth_medical_certificate"
CONSUMERS = [f"dept{i:02d}" for i in range(12)]
START_MS = to_millis(from_millis(0)) + 1_767_225_600_000  # 2026-01-01
HASHER = KeyHasher(b"benchmark trace key, 32+ characters long")


def citizen(i: int) -> bytes:
    return f"33010219900101{i:04d}".encode() if i < 10_000 else f"3301{i:014d}".encode()


def plan(deliveries: int, seed: int = 1) -> list[tuple[str, list[int]]]:
    """Per entry: its consumer and the citizens (key numbers) it delivered."""
    rnd = random.Random(seed)  # noqa: S311 - synthetic data
    keys = max(1, deliveries // 5)  # each key delivered about five times
    out: list[tuple[str, list[int]]] = []
    batch: dict[str, list[int]] = {}
    for _ in range(deliveries):
        consumer = CONSUMERS[int(rnd.random() * len(CONSUMERS))]
        batch.setdefault(consumer, []).append(int(rnd.random() * keys))
    per_consumer = {c: iter(v) for c, v in batch.items()}
    # interleave consumers' entries as routers write them
    while per_consumer:
        for c in list(per_consumer):
            chunk = [k for _, k in zip(range(PER_ENTRY), per_consumer[c], strict=False)]
            if not chunk:
                del per_consumer[c]
                continue
            out.append((c, chunk))
    return out


PER_ENTRY = 10


def rows(archive: Archive, entries: list[tuple[str, list[int]]]) -> Iterator[tuple[Any, ...]]:
    sqlite = archive.dialect == "sqlite"
    offset = 0
    for i, (consumer, keys) in enumerate(entries):
        hashes = HASHER.details(RESOURCE, [(citizen(k), offset + j) for j, k in enumerate(keys)])
        details = {
            "record_count": str(len(keys)),
            "filtered_count": "0",
            "partition": "0",
            "offsets": f"{offset}-{offset + len(keys) - 1}",
            "source_topic": f"gov.src.health.{RESOURCE}",
            "delivery_topic": f"gov.dlv.{consumer}.{RESOURCE}",
            "fields": "certificate_no,child_name,birth_date,region_code",
            KEY_HASHES: hashes,
        }
        offset += len(keys)
        at_ms = START_MS + i * 1000
        yield (
            "router-bench-1", i, f"router-bench-1#{i}", f"{i - 1:064x}", f"{i:064x}",
            at_ms if sqlite else from_millis(at_ms), "router", Action.RECORDS_DELIVERED.value,
            RESOURCE, consumer, "health", "delivered", None, f"GR-{consumer}", None,
            "用途 purpose", "host-1", archive.details_param(details), 0, i,
        )  # fmt: skip


def load_keys(archive: Archive, entries: list[tuple[str, list[int]]]) -> int:
    """Index the key hashes as the archiver does (in bulk); returns the rows added."""
    n = 0
    batch: list[tuple[str, str, int, int]] = []

    def flush() -> None:
        with archive.transaction() as cur:
            if archive.dialect == "postgresql":
                with cur.copy(
                    "COPY audit_keys (key_hash, writer, seq, source_offset) FROM STDIN"
                ) as cp:
                    for r in batch:
                        cp.write_row(r)
            else:
                cur.executemany("INSERT INTO audit_keys VALUES (?, ?, ?, ?)", batch)
        batch.clear()

    offset = 0
    for i, (_, keys) in enumerate(entries):
        for j, k in enumerate(keys):
            batch.append((HASHER.digest(RESOURCE, citizen(k)), "router-bench-1", i, offset + j))
        offset += len(keys)
        n += len(keys)
        if len(batch) >= 50_000:
            flush()
    if batch:
        flush()
    return n


def size_of_keys(archive: Archive, url: str, before: int) -> int:
    if archive.dialect == "postgresql":
        with archive.transaction() as cur:
            cur.execute("SELECT pg_total_relation_size('audit_keys')")
            return int(cur.fetchone()[0])
    archive.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(sqlite_path(url)) - before


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def run(archive: Archive, url: str, deliveries: int) -> dict[str, Any]:
    entries = plan(deliveries)
    archive.drop_indexes()
    t = time.perf_counter()
    archive.bulk_insert(rows(archive, entries))
    archive.create_indexes()
    load_s = time.perf_counter() - t
    before = 0
    if archive.dialect == "sqlite":
        archive.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = os.path.getsize(sqlite_path(url))
    t = time.perf_counter()
    key_count = load_keys(archive, entries)
    archive.analyze()
    index_s = time.perf_counter() - t
    index_bytes = size_of_keys(archive, url, before)
    sample = next(iter(rows(archive, entries[:1])))
    detail_bytes = sum(
        len(HASHER.details(RESOURCE, [(citizen(k), 10**6) for k in ks])) + 1 for _, ks in entries
    )
    del sample
    # the citizen of the first delivery: every one of its deliveries must be found
    who = HASHER.digest(RESOURCE, citizen(entries[0][1][0]))
    scan_s, scanned = timed(lambda: trace.by_key_scanning_archive(archive, RESOURCE, who), 1)
    indexed_s, found = timed(lambda: trace.by_key_in_archive(archive, RESOURCE, who), 5)
    assert [r.source for r in found] == [r.source for r in scanned], "index and scan differ"
    assert found, "the traced key was delivered"
    return {
        "dialect": archive.dialect,
        "deliveries": deliveries,
        "entries": len(entries),
        "load_s": load_s,
        "key_rows": key_count,
        "key_index_build_s": index_s,
        "key_index_bytes": index_bytes,
        "key_hashes_bytes_in_log": detail_bytes,
        "found": len(found),
        "full_scan_ms": scan_s * 1000,
        "indexed_ms": indexed_s * 1000,
        "ratio": scan_s / max(indexed_s, 1e-6),
    }


def main() -> int:
    global PER_ENTRY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--to", help="archive URL (default: a temporary SQLite file); 'postgresql' "
                    "alone starts a throwaway PostgreSQL for the run")  # fmt: skip
    ap.add_argument("--deliveries", type=int, default=1_000_000)
    ap.add_argument("--per-entry", type=int, default=10, help="records per delivery entry")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    PER_ENTRY = args.per_entry
    url, server, tmp, cleanup = args.to, None, None, None
    if url == "postgresql":
        from exchange.dev.databases import ThrowawayPostgres

        server = ThrowawayPostgres(fast=False).start()
        url = server.url
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{tmp.name}/trace-bench.sqlite"
    elif url.startswith(("postgresql://", "postgres://")):
        import psycopg

        schema = f"trace_bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg.connect(url, autocommit=True)
        admin.execute(f"CREATE SCHEMA {schema}")
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()

    try:
        with open_archive(url) as archive:
            r = run(archive, url, args.deliveries)
    finally:
        if cleanup:
            cleanup()
        if tmp:
            tmp.cleanup()
        if server:
            server.stop()
    d = r["deliveries"]
    print(f"{r['dialect']}: {d:,} deliveries in {r['entries']:,} delivery entries "
          f"({args.per_entry} records an entry), loaded in {r['load_s']:.1f} s")  # fmt: skip
    print(f"key_hashes in the log: {r['key_hashes_bytes_in_log'] / 1e6:.1f} MB "
          f"({r['key_hashes_bytes_in_log'] / d:.1f} bytes a delivery)")  # fmt: skip
    print(f"key index (audit_keys + its index): {r['key_rows']:,} rows, "
          f"{r['key_index_bytes'] / 1e6:.1f} MB ({r['key_index_bytes'] / d:.1f} bytes a "
          f"delivery), built in {r['key_index_build_s']:.1f} s")  # fmt: skip
    print(f"trace of one key ({r['found']} deliveries): full scan {r['full_scan_ms']:.0f} ms, "
          f"indexed {r['indexed_ms']:.2f} ms: {r['ratio']:.0f}x faster "
          "(target: indexed under 1000 ms)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0 if r["indexed_ms"] < 1000 else 1


if __name__ == "__main__":
    sys.exit(main())

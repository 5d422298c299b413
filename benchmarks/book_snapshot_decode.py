"""Decoding a grant book snapshot of 3,600 grants: the decoder of earlier releases (format 1,
one JSON object per record, the garbage collector running) beside today's (format 2: a
table per record type, the collector paused), in one run.

    python benchmarks/book_snapshot_decode.py [--grants 3600] [--rounds 15]

Starts an embedded broker to build a real book (the bench catalog and grants of
``exchange bench``, replayed by :func:`exchange.control.state.load`), then decodes both
snapshots ``--rounds`` times, interleaved, and prints the medians and their ratio. Every
session that starts from a snapshot (each CLI command, ``Department``) pays this decode.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import tempfile
import time
import zlib
from pathlib import Path

from exchange.bus import topics
from exchange.catalog.loader import load_catalog
from exchange.control import book_snapshot, catalog_store, state
from exchange.dev.bench import _write_events
from exchange.dev.bench_catalog import grant_events, write_catalog
from exchange.dev.broker import given_or_embedded
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import Application, Grant


def encode_v1(book: GrantBook, grants_offset: int) -> bytes:
    """A snapshot as routers of earlier releases wrote it (format 1)."""
    document = json.dumps(
        {
            "applications": [book_snapshot._plain(a) for a in book.applications.values()],
            "grants": [book_snapshot._plain(g) for g in book.grants.values()],
            "subscriptions": sorted(book.subscriptions),
            "accepted": sorted(book.accepted),
            "refused": book.refused,
            "current": [[c, r, g] for (c, r), g in book.current.items()],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return book_snapshot.CODEC.encode(
        {
            "grants_offset": grants_offset,
            "catalog_version": 1,
            "catalog_digest": "",
            "written_by": "bench",
            "digest": hashlib.sha256(document).hexdigest(),
            "book": zlib.compress(document, 1),
            "grants_topic_id": "",
            "grants_from": 0,
        }
    )


def decode_v1(value: bytes) -> GrantBook:
    """The decoder of earlier releases, as it was (the baseline)."""
    rec = book_snapshot.CODEC.decode(value)
    document = zlib.decompress(rec["book"])
    assert hashlib.sha256(document).hexdigest() == rec["digest"]
    d = json.loads(document)
    book = GrantBook()
    book.applications = {a["id"]: book_snapshot._revive(Application, a) for a in d["applications"]}
    book.grants = {g["id"]: book_snapshot._revive(Grant, g) for g in d["grants"]}
    book.subscriptions = {(c, r) for c, r in d["subscriptions"]}
    book.accepted = set(d["accepted"])
    book.refused = dict(d["refused"])
    book.current = {(c, r): g for c, r, g in d["current"]}
    return book


async def replayed_book(grants: int) -> tuple[GrantBook, int]:
    bus, broker = given_or_embedded(None)
    assert broker is not None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            write_catalog(Path(tmp))
            catalog = load_catalog(Path(tmp))
            await catalog_store.load(bus, catalog, actor="bench", unsigned_override="bench")
        await _write_events(bus, grant_events(grants))
        full = await state.load(bus, from_snapshot=False)
        return full.book, full.positions.get(topics.GRANTS, 0)
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grants", type=int, default=3600)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    book, at = asyncio.run(replayed_book(args.grants))
    old = encode_v1(book, at)
    new = book_snapshot.encode(book, at, 1, "", "bench")
    assert book_snapshot.decode(new).book.grants == decode_v1(old).grants
    before, after = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        decode_v1(old)
        before.append(time.perf_counter() - t)
        t = time.perf_counter()
        book_snapshot.decode(new)
        after.append(time.perf_counter() - t)
    b, a = statistics.median(before), statistics.median(after)
    size_old = len(zlib.decompress(book_snapshot.CODEC.decode(old)["book"]))
    size_new = len(zlib.decompress(book_snapshot.CODEC.decode(new)["book"]))
    print(f"{len(book.grants)} grants, {len(book.applications)} applications")
    print(f"document: format 1 {size_old:,} bytes, format 2 {size_new:,} bytes")
    print(
        f"decode median: format 1 {b * 1000:.0f} ms, format 2 {a * 1000:.0f} ms, ratio {a / b:.2f}"
    )


if __name__ == "__main__":
    main()

"""How long a full garbage collection takes in a router holding a backfill's pending keys.

Applies 1,002,000 rendered records (three partitions of 334,000 keys, steps of 2,000, as
a worker sends them) to backfill parts, as the router does, then times ``gc.collect()``
three times (the start-up heap frozen first, as ``exchange router`` does)::

    python benchmarks/backfill_pending_gc.py
"""

from __future__ import annotations

import gc
import os
import time

from aiokafka import TopicPartition

from exchange.router.backfill_scan import BackfillScan, Part

KEYS = 334_000
STEP = 2_000


def main() -> None:
    gc.collect()
    gc.freeze()
    parts = [Part(TopicPartition("gov.src.dept14.res069", p), cutover=10**9) for p in range(3)]
    started = time.perf_counter()
    for p, part in enumerate(parts):
        for first in range(0, KEYS, STEP):
            rows = [
                (f"9133{p}{i:013d}".encode(), i, os.urandom(200), os.urandom(32))
                for i in range(first, first + STEP)
            ]
            BackfillScan.apply(part, (rows, first + STEP))
    applied = time.perf_counter() - started
    took = []
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        took.append((time.perf_counter() - started) * 1000)
    pending = sum(len(p.pending) for p in parts)
    print(
        f"{pending:,} keys pending (applied in {applied:.1f} s, rows made included): "
        f"full collections {', '.join(f'{t:.2f}' for t in took)} ms"
    )


if __name__ == "__main__":
    main()

"""Recompiling every view of 3,600 grants, with mask specs parsed anew each time (as before)
beside parsed once and remembered (today), in one run.

    python benchmarks/recompile.py [--grants 3600] [--rounds 7]

Starts an embedded broker, loads the bench catalog and grants of ``exchange bench``
(row 4 measures the same recompile, target <= 0.5 s), starts a router and times
``recompile(everything=True)`` ``--rounds`` times each way, interleaved; prints the
medians and their ratio. A router recompiles every view when a catalog is loaded and
when a grant expires.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This file's directory would shadow the package when run as a script.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from exchange.catalog.loader import load_catalog
from exchange.control import catalog_store
from exchange.dev.bench import _write_events
from exchange.dev.bench_catalog import grant_events, write_catalog
from exchange.dev.broker import given_or_embedded
from exchange.enforce import masks
from exchange.router.loop import Router


async def measure(grants: int, rounds: int) -> tuple[list[float], list[float]]:
    bus, broker = given_or_embedded(None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            write_catalog(Path(tmp))
            catalog = load_catalog(Path(tmp))
        await catalog_store.load(bus, catalog, actor="bench", unsigned_override="bench")
        await _write_events(bus, grant_events(grants))
        router = Router(bus, group="bench-recompile", master_secret=b"bench" * 8)
        await router.start()
        remembered = masks._parse_text
        before: list[float] = []
        after: list[float] = []
        try:
            await router.recompile(everything=True)  # warm: topics made, schemas known
            for _ in range(rounds):
                masks._parse_text = remembered.__wrapped__  # type: ignore[assignment]
                t = time.perf_counter()
                await router.recompile(everything=True)
                before.append(time.perf_counter() - t)
                masks._parse_text = remembered
                t = time.perf_counter()
                await router.recompile(everything=True)
                after.append(time.perf_counter() - t)
        finally:
            masks._parse_text = remembered
            await router.stop()
        return before, after
    finally:
        if broker is not None:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grants", type=int, default=3600)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    before, after = asyncio.run(measure(args.grants, args.rounds))
    b, a = statistics.median(before), statistics.median(after)
    print(f"{args.grants} grants, {args.rounds} rounds each way")
    print(
        f"recompile median: masks parsed each time {b:.3f} s, remembered {a:.3f} s, ratio {a / b:.2f}"
    )


if __name__ == "__main__":
    main()

"""``exchange bench`` rows 7 alone: backfill (全量) rate vs live routing, others' p99 during it.

The same measure as the full bench's last rows (:mod:`exchange.dev.bench_backfill`), on the
same bench catalog and set-up, without rows 1-6 before it: quicker to repeat on a shared
machine. The 3,600 grants of row 3 are written first, as in the full run (``--no-grants``
leaves them out)::

    python benchmarks/backfill.py                         # 100,000 keys, 2 s latency runs
    python benchmarks/backfill.py --records 1000000 --seconds 20   # the full run's size
    python benchmarks/backfill.py --repeat 2 --json bf.json
    python benchmarks/backfill.py --engine kafka          # a throwaway 1-node Apache Kafka

Each repeat starts a bus of its own (as ``exchange bench`` does); every row is printed
with its same-run baseline and ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from aiokafka.errors import KafkaError

from exchange.dev import bench as b
from exchange.dev import bench_backfill
from exchange.dev.bench_catalog import grant_events
from exchange.router.loop import Router

SETTLE_IN_S = 20.0  # past the command audit's 5 s grace and its rounds, on a busy machine


async def _run(args: argparse.Namespace) -> list[b.Row]:
    started = time.perf_counter()

    def step(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr)

    rows: list[b.Row] = []
    for n in range(args.repeat):
        step(f"run {n + 1} of {args.repeat}")
        got = await _once(args, step)
        for r in got:
            r.name = f"{r.name} (run {n + 1})"
        print(b.format_rows(got), flush=True)
        rows += got
    return rows


async def _once(args: argparse.Namespace, step: Callable[[str], None]) -> list[b.Row]:
    """One measure on a bus of its own (started for it, stopped after)."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "kafka":
            on = await asyncio.to_thread(b.kafka_engine, Path(tmp), args.nodes, step)
        else:
            on = b.embedded_or_given(step)
        step(f"measuring on {on.describe}")
        try:
            s = await b._setup(on, Path(tmp), 2000)
            await b._preload(s, 2000)  # the bench resource: what dept01's latency runs use
            if args.grants:
                step("writing 3,600 grants over 57 departments (as row 3 leaves them)")
                await b._write_events(s.bus, grant_events(3600))
                await _settle_in(s, step)
            got = await bench_backfill.measure(s, args.records, args.seconds, step)
        finally:
            if on.stop is not None:
                await asyncio.to_thread(on.stop)
    for r in got:
        r.engine = on.name
    return got


async def _settle_in(s: b.Setup, step: Callable[[str], None]) -> None:
    """Run a router over the grants first, as rows 3-6 do before rows 7 in a full run: the
    commands written without a client are audited once per bus, by the first router
    (the command audit's group), and that must not fall into the measured router's run."""
    step("a router follows the grants and audits the commands (as rows 3-6 leave the bus)")
    for attempt in range(3):
        router = Router(
            s.router,
            group=f"{b.GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
            master_secret=b.SECRET,
            session_timeout_ms=s.session_ms,
        )
        try:
            await router.start()  # creates 3,600 delivery topics: a busy broker may time out
            break
        except KafkaError as exc:
            await router.stop()
            step(f"the router did not start ({exc!r}), attempt {attempt + 1} of 3")
    else:
        raise RuntimeError("the router did not start in 3 attempts")
    try:
        await b._caught_up(s, router)
        until = time.monotonic() + SETTLE_IN_S
        while time.monotonic() < until:
            await router.route_once()
    finally:
        await router.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000, help="distinct keys backfilled")
    p.add_argument("--seconds", type=float, default=2.0, help="each latency run's length")
    p.add_argument("--repeat", type=int, default=1, help="measures, one after the other")
    p.add_argument("--engine", choices=("embedded", "kafka"), default="embedded")
    p.add_argument("--nodes", type=int, choices=(1, 3), default=1, help="Kafka nodes")
    p.add_argument("--no-grants", dest="grants", action="store_false")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args()
    rows = asyncio.run(_run(args))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

"""How long the command line takes, beside what Python and a raw Kafka client take.

    python benchmarks/cli_latency.py [--rounds 20] [--grants 3600] [--json out.json]

Starts an embedded broker (or uses EXCHANGE_BOOTSTRAP_SERVERS), loads the
bench catalog of ``exchange bench`` (57 departments, 71 resources), writes
``--grants`` approved grants to ``gov.ctl.grants`` and starts one ``exchange
router`` process, as a bus in service has. Then, in rounds (interleaved, so
the machine's noise hits every row alike), it times:

* ``python -c pass`` and ``python -c "import aiokafka"``: the start-up floor;
* ``exchange --help``;
* a raw aiokafka produce of one record in a new process (start, send, ack):
  the floor of any command that writes to Kafka;
* ``exchange revoke`` of a grant approved for the round, in a session of its own
  (``EXCHANGE_NO_AGENT=1``);
* ``exchange revoke`` of another grant, handed to the provider's running
  ``exchange agent`` (one agent per provider, started before the rounds).

For the produce and the revoke, "acknowledged" is when a consumer following
the topic in this process sees the record (the broker has it): measured from
the moment the process was started. "exit" is when the process ended. Prints
median and p95 of every row, and the targets of issue 12. The package's
bytecode is compiled first, as an installed package has it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.control import catalog_store, state
from exchange.control.state import GRANT_CODEC
from exchange.dev.bench import EMBEDDED_SESSION_MS, SECRET, _write_events
from exchange.dev.bench_catalog import grant_events, write_catalog
from exchange.dev.broker import given_or_embedded
from exchange.sharing.records import EventKind, GrantEvent

EXCHANGE = str(Path(sys.executable).with_name("exchange"))
RAW_TOPIC = "bench.cli.raw"
RAW_PRODUCE = """
import asyncio, sys
from aiokafka import AIOKafkaProducer
async def main():
    p = AIOKafkaProducer(bootstrap_servers=sys.argv[1], acks="all", linger_ms=0)
    await p.start()
    await p.send_and_wait(sys.argv[2], key=b"k", value=sys.argv[3].encode())
    await p.stop()
asyncio.run(main())
"""


class Watch:
    """Follows topics from their current end; stamps when a record matching a key appears."""

    def __init__(self, bus: Connection, *watched: str) -> None:
        self.bootstrap = bus
        self.watched = watched
        self.seen: dict[str, float] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await kafka.ensure_topics(self.bootstrap, self.watched)
        self._consumer = kafka.consumer(self.bootstrap, fetch_max_wait_ms=5)
        await self._consumer.start()
        tps = [tp for t in self.watched for tp in await kafka.topic_partitions(self._consumer, t)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        await kafka.drain(self._consumer, tps, timeout_s=60)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=50)
            stamp = time.perf_counter()
            for records in batch.values():
                for rec in records:
                    self.seen[self._key(rec)] = stamp

    @staticmethod
    def _key(rec: Any) -> str:
        if rec.topic == topics.GRANTS:
            with contextlib.suppress(Exception):
                ev = GrantEvent.from_avro(GRANT_CODEC.decode(rec.value))
                return f"{ev.kind.value}:{ev.grant_id}"
        return str(rec.value.decode(errors="replace"))

    async def when(self, key: str, wait_s: float = 30) -> float:
        deadline = time.perf_counter() + wait_s
        while key not in self.seen:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{key} never appeared")
            await asyncio.sleep(0.005)
        return self.seen[key]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


async def _timed(argv: list[str], **env: str) -> tuple[float, float]:
    """(start time, seconds until exit) of a process; raises if it fails."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env}
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}): {err.decode()[-500:]}")
    return start, time.perf_counter() - start


async def _agent(department: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``exchange agent --as department``, once it listens."""
    proc = await asyncio.create_subprocess_exec(
        EXCHANGE, "agent", "--as", department, env=env, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 60)
    if b"listening at" not in line:
        raise RuntimeError(f"the agent of {department} did not start: {line.decode()}")
    return proc


def _stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


async def run(rounds: int, grants: int) -> dict[str, list[float]]:
    bus, broker = given_or_embedded(os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS"))
    os.environ.update(bus.environment())  # every command started below reaches the same bus
    os.environ["EXCHANGE_STATE_DIR"] = tempfile.mkdtemp(prefix="cli-latency-")  # agent sockets
    router: asyncio.subprocess.Process | None = None
    router_log = tempfile.TemporaryFile()  # noqa: SIM115 - read back if the router dies
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    try:
        with tempfile.TemporaryDirectory() as tmp:
            write_catalog(Path(tmp))
            await catalog_store.load(
                bus, load_catalog(Path(tmp)), actor="bench", unsigned_override="benchmark catalog"
            )
        events = grant_events(grants + 2 * rounds)
        await _write_events(bus, events)
        print(f"{grants + 2 * rounds} grants on {bus}; starting a router", file=sys.stderr)
        env = dict(
            os.environ,
            EXCHANGE_MASK_SECRET=SECRET.decode(),
            EXCHANGE_ROUTER_SESSION_TIMEOUT_MS=str(EMBEDDED_SESSION_MS),
        )
        router = await asyncio.create_subprocess_exec(
            *[EXCHANGE, "router", "--group", "cli-latency"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=router_log,
        )
        await asyncio.sleep(8)  # the router replays the control topics and joins its group
        watch = Watch(bus, topics.GRANTS, RAW_TOPIC)
        await watch.start()
        approvals = [e for e in events if e.kind is EventKind.APPROVED][grants:]
        alone, through_agent = approvals[:rounds], approvals[rounds:]
        agents = [await _agent(dept, env) for dept in sorted({g.actor for g in through_agent})]
        try:
            for n, (grant, agented) in enumerate(zip(alone, through_agent, strict=True)):
                _, t = await _timed([sys.executable, "-c", "pass"])
                add("python -c pass", t)
                _, t = await _timed([sys.executable, "-c", "import aiokafka"])
                add('python -c "import aiokafka"', t)
                _, t = await _timed([EXCHANGE, "--help"])
                add("exchange --help", t)
                marker = f"raw-{n}-{time.time_ns()}"
                raw = [sys.executable, "-c", RAW_PRODUCE, bus.bootstrap, RAW_TOPIC, marker]
                start, t = await _timed(raw)
                add("raw aiokafka produce: acknowledged", await watch.when(marker) - start)
                add("raw aiokafka produce: exit", t)
                revoke = [EXCHANGE, "revoke", "--as", grant.actor]
                argv = [*revoke, str(grant.grant_id), "--reason", "bench"]
                start, t = await _timed(argv, EXCHANGE_NO_AGENT="1")
                add(
                    "exchange revoke: acknowledged",
                    await watch.when(f"REVOKED:{grant.grant_id}") - start,
                )
                add("exchange revoke: exit", t)
                revoke = [EXCHANGE, "revoke", "--as", agented.actor]
                start, t = await _timed([*revoke, str(agented.grant_id), "--reason", "bench"])
                add(
                    "revoke via agent: acknowledged",
                    await watch.when(f"REVOKED:{agented.grant_id}") - start,
                )
                add("revoke via agent: exit", t)
                t0 = time.perf_counter()
                loaded = await state.load(bus)
                add("load the grant book in this process", time.perf_counter() - t0)
                assert len(loaded.book.grants) >= grants
                print(f"round {n + 1}/{rounds} done", file=sys.stderr)
        finally:
            await watch.stop()
            for a in agents:
                a.terminate()
                await asyncio.wait_for(a.wait(), 30)
    finally:
        if router is not None and router.returncode is None:
            router.terminate()
            await asyncio.wait_for(router.wait(), 30)
        elif router is not None:
            router_log.seek(0)
            tail = router_log.read().decode(errors="replace")[-2000:]
            print(f"the router exited early ({router.returncode}):\n{tail}", file=sys.stderr)
        if broker is not None:
            broker.stop()
    return rows


TARGETS = {
    "exchange --help": "<= 0.25 s",
    "exchange revoke: acknowledged": "(no agent)",
    "revoke via agent: acknowledged": "<= 0.5 s at p95",
    "load the grant book in this process": "<= 0.5 s",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--grants", type=int, default=3600)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    # as an installed package has them (pip compiles on install), even where
    # PYTHONDONTWRITEBYTECODE would make every command compile the package again
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            str(root / "exchange"),
            str(root / "connectors"),
        ],
        check=True,
    )
    rows = asyncio.run(run(args.rounds, args.grants))
    print(f"{'measure':<40} {'median s':>9} {'p95 s':>7}  target (n={args.rounds})")
    out = {}
    for name, values in rows.items():
        median, p95 = _stats(values)
        out[name] = {"median": median, "p95": p95, "values": values}
        print(f"{name:<40} {median:9.3f} {p95:7.3f}  {TARGETS.get(name, '(baseline)')}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

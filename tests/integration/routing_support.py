"""Helpers for the router integration tests: an in-process router, polling, reading topics.

Not a test module. Every wait here is a poll with a deadline, never a fixed
sleep; nothing relies on end offsets (see DESIGN.md §3): "everything routed"
is known from the router's own count of committed source records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from aiokafka.admin import AIOKafkaAdminClient

from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader, Received
from exchange.router.loop import Router
from exchange.router.view import CompiledView

MASTER_SECRET = b"x" * 32
#: the embedded broker holds a group join for half the session timeout (5 s at the
#: default); a real Kafka refuses sessions under 6 s (the Kafka lane: its minimum)
ON_KAFKA = os.environ.get("EXCHANGE_TEST_ENGINE") == "kafka"
SESSION_MS = (
    6_000 if ON_KAFKA else 10_000 if os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS") else 3_000
)

#: longest a router's stop may take in a test (it bounds its own parts to 15 s each)
STOP_S = 60.0


@dataclass
class RouterRun:
    """A router started in this process, routing in a background task."""

    router: Router
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    def check_alive(self) -> None:
        if self.task.done():
            self.task.result()  # raises what killed it
            raise AssertionError("the router stopped routing")

    async def stop(self) -> None:
        if not self.router.running:
            return  # already stopped
        self.stop_event.set()
        try:
            await asyncio.wait_for(self.task, timeout=15)
        finally:
            stopping = asyncio.ensure_future(self.router.stop())
            done, _ = await asyncio.wait([stopping], timeout=STOP_S)
            if not done:  # say where it hangs: every task's stack, then fail
                for task in asyncio.all_tasks():
                    task.print_stack(limit=8, file=sys.stderr)
                stopping.cancel()
                raise AssertionError(
                    f"the router did not stop within {STOP_S:.0f} s (tasks' stacks on stderr)"
                )
            stopping.result()

    def views(self, resource: str) -> dict[str, CompiledView]:
        return {v.consumer: v for v in self.router.views.get(resource, [])}


async def start_router(bus: Connection, *, group: str | None = None, **options: Any) -> RouterRun:
    router = Router(
        bus,
        group=group or f"test-router-{uuid.uuid4().hex[:8]}",
        master_secret=MASTER_SECRET,
        **{"session_timeout_ms": SESSION_MS, **options},
    )
    await router.start()
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop), name=f"router-{router.instance}")
    return RouterRun(router, task, stop)


@contextlib.asynccontextmanager
async def running_router(bus: Connection, **options: Any) -> AsyncIterator[RouterRun]:
    run = await start_router(bus, **options)
    try:
        yield run
    finally:
        await run.stop()


async def wait_for(
    condition: Callable[[], bool], *, within: float, what: str, interval: float = 0.05
) -> float:
    """Poll ``condition`` until true; returns the seconds it took. Fails after ``within``."""
    started = time.monotonic()
    deadline = started + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def wait_views(
    run: RouterRun,
    resource: str,
    expected: Mapping[str, Iterable[str] | None],
    *,
    within: float = 15.0,
) -> None:
    """Wait until the router's compiled views of ``resource`` are exactly ``expected``.

    ``expected`` maps consumer to its field set; a consumer mapped to None
    must have no view at all. Consumers not named are not checked.
    """

    def ready() -> bool:
        run.check_alive()
        views = run.views(resource)
        for consumer, fields in expected.items():
            if fields is None:
                if consumer in views:
                    return False
            elif consumer not in views or set(views[consumer].view.fields) != set(fields):
                return False
        return not run.router.view_table.stale

    await wait_for(ready, within=within, what=f"router views of {resource}: {dict(expected)}")


async def wait_routed(run: RouterRun, count: int, *, within: float = 30.0) -> None:
    """Wait until the router committed at least ``count`` source records."""

    def done() -> bool:
        run.check_alive()
        return run.router.routed >= count

    await wait_for(done, within=within, what=f"{count} source records routed")


async def publish(
    bus: Connection, catalog: Catalog, resource: str, records: list[dict[str, Any]]
) -> list[str]:
    provider = catalog.resources[resource].provider
    async with Publisher(bus, catalog, provider) as pub:
        return await pub.publish(resource, records)


async def read_topic(
    bus: Connection,
    topic: str,
    *,
    until: Callable[[list[Received]], bool] | None = None,
    within: float = 20.0,
    idle: float | None = None,
    dedup: bool = True,
) -> list[Received]:
    """Decoded records of a delivery topic, from the beginning.

    With ``until``: reads until it holds for the records so far, failing
    after ``within``. Without: reads until ``idle`` seconds pass with no new
    record (for "everything there is", once the router has routed it all).
    """
    out: list[Received] = []
    deadline = time.monotonic() + within
    async with Reader(bus, topic, dedup=dedup) as reader:
        wait = idle if until is None and idle is not None else within
        batches_of = cast("AsyncGenerator[list[Received], None]", reader.batches(idle_timeout=wait))
        async with contextlib.aclosing(batches_of) as batches:
            async for batch in batches:
                out.extend(batch)
                if until is not None and until(out):
                    return out
                if time.monotonic() > deadline:
                    break
    if until is not None and not until(out):
        raise AssertionError(f"{topic}: condition not met after {within} s ({len(out)} records)")
    return out


async def read_raw(bus: Connection, topic: str) -> list[Any]:
    """Every raw record of ``topic`` (values, keys, headers as bytes), read to its end."""
    return await kafka.read_to_end(bus, topic)


async def list_topics(bus: Connection) -> set[str]:
    admin = AIOKafkaAdminClient(**bus.client_options())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def spawn_router(bus: Connection, group: str, **env_vars: str) -> subprocess.Popen[bytes]:
    """A router process (``exchange router``) in ``group``; ``env_vars`` set its settings."""
    env = dict(
        os.environ,
        **bus.environment(),
        **env_vars,
        EXCHANGE_MASK_SECRET="crash-test-secret-0123456789",
        EXCHANGE_ROUTER_SESSION_TIMEOUT_MS=str(SESSION_MS),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "exchange.cli", "router", "--group", group],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def committed_total(bus: Connection, group: str, source: str) -> int:
    """Source records the group committed, over every partition of ``source``."""
    c = kafka.consumer(bus, group_id=group)
    await c.start()
    try:
        parts = await kafka.topic_partitions(c, source)
        return sum([await c.committed(tp) or 0 for tp in parts])
    finally:
        await c.stop()

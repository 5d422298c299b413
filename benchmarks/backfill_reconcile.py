"""How long a router's backfill reconcile holds its loop after a grant change.

At every grant change the router decides which backfills run
(:meth:`exchange.router.backfill.Backfiller.reconcile`). This builds a backfiller over
3,640 views (52 departments × 70 resources, 3 source partitions each, every one
backfilled before), then makes 15 grant changes, each recompiling one resource's 52
views (new objects, as the router's recompile does), and times each reconcile. No
broker: the views are stand-ins with what a reconcile reads (consumer, view, active)::

    python benchmarks/backfill_reconcile.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from exchange.metrics import RouterMetrics
from exchange.router.backfill import Backfiller
from exchange.router.backfill_state import Progress, shape_of
from exchange.sharing.policy import View

NOW = dt.datetime.now(dt.UTC)
RESOURCES = [f"res{i:03d}" for i in range(70)]
CONSUMERS = [f"dept{i:02d}" for i in range(52)]
CHANGES = 15


class _View:
    """What a reconcile reads of a compiled view."""

    def __init__(self, view: View) -> None:
        self.view, self.consumer, self.key_secret = view, view.consumer, b"key"

    def active(self, at: dt.datetime) -> bool:
        return True


class _Consumer:
    def __init__(self, tps: list[TopicPartition]) -> None:
        self.tps = tps

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    async def position(self, tp: TopicPartition) -> int:
        return 0


def _compile(changed: str | None = None, before: dict[Any, _View] | None = None) -> dict[str, Any]:
    """Every resource's views: new ones for ``changed`` (or all), the others kept."""
    views: dict[str, list[_View]] = {}
    for res in RESOURCES:
        views[res] = [
            before[(c, res)]
            if before is not None and res != changed
            else _View(View(c, res, "dept99", ("a", "b"), {}, None, grant_id=f"GR-{c}-{res}"))
            for c in CONSUMERS
        ]
    return views


def _done(view: _View, partition: int) -> Progress:
    v = view.view
    return Progress(
        v.consumer,
        v.resource,
        partition,
        "BF",
        shape_of(v),
        "a,b",
        v.grant_id,
        None,
        "grant",
        10,
        9,
        10,
        10,
        "done",
        None,
        "",
        NOW,
        "router",
    )


async def main() -> None:
    tps = [TopicPartition(f"gov.src.dept99.{r}", p) for r in RESOURCES for p in range(3)]
    views = _compile()
    catalog = SimpleNamespace(
        resources={r: SimpleNamespace(id=r, provider="dept99") for r in RESOURCES}
    )
    table = SimpleNamespace(views=views, generation=1, state=SimpleNamespace(catalog=catalog))
    queue = SimpleNamespace(unacked=0)
    backfiller = Backfiller(None, table, None, None, RouterMetrics(), "router", {}, queue)  # type: ignore[arg-type]
    for vs in views.values():
        for v in vs:
            for p in range(3):
                backfiller.book.progress[(v.consumer, v.view.resource, p)] = _done(v, p)
    backfiller.progress.write = backfiller.book.note  # type: ignore[method-assign]
    consumer = _Consumer(tps)
    started = time.perf_counter()
    await backfiller.reconcile(consumer, {})
    first = (time.perf_counter() - started) * 1000
    took = []
    for i in range(CHANGES):
        before = {(v.consumer, r): v for r, vs in table.views.items() for v in vs}
        table.views = _compile(RESOURCES[i], before)
        table.generation += 1
        started = time.perf_counter()
        await backfiller.reconcile(consumer, {})
        took.append((time.perf_counter() - started) * 1000)
    count = sum(len(vs) for vs in table.views.values())
    print(
        f"{count:,} views × 3 partitions: first reconcile {first:.0f} ms; after each of "
        f"{CHANGES} grant changes: median {statistics.median(took):.1f} ms, "
        f"max {max(took):.1f} ms ({', '.join(f'{t:.0f}' for t in took)})"
    )


if __name__ == "__main__":
    asyncio.run(main())

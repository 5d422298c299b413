"""The settle pipeline: routed batches acknowledged, then audited, then committed, in order.

At-least-once: source offsets are committed only after every delivery (and
dead letter) of the batch is acknowledged, and then its audit entries on
``gov.audit`` (one per consumer and source partition, one per dead letter);
a batch commits only after the one before it did. Settling runs behind
routing, in a task of its own, so the wait for acks does not stall the next
batch; the router bounds how many batches wait (:meth:`Settler.wait_for_room`).

Audit entries gathered between two batches (what the router noticed, dead
letters, deliveries) wait in :class:`PendingDrafts` and ride with the next
batch handed over (:meth:`Settler.add`), so they are written before its
offsets are committed.

Public surface: :class:`PendingDrafts`, :class:`Settler` (``add``,
``settle``, ``raise_if_failed``, ``wait_for_room``, ``finish_round``,
``write_pending``, ``close``; ``consumer`` and ``audit`` set at start;
``routed``, ``waiting``, ``oldest_routed_at`` read), :class:`Routed`,
:class:`SettleOnRevoke` and :func:`merge_deliveries`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from exchange.audit.entry import Action, Draft
from exchange.audit.key_hash import KEY_HASHES
from exchange.audit.writer import AuditWriter
from exchange.errors import ExchangeError
from exchange.metrics import RouterMetrics

# the router's one logger: its log lines read as they did before the split
log = logging.getLogger("exchange.router.loop")

SETTLE_INTERVAL_S = 0.05  # settling rounds (acks, audit write, commit) at most this often

_VARYING = ("record_count", "filtered_count", "offsets", KEY_HASHES)


def merge_deliveries(drafts: list[Draft]) -> list[Draft]:
    """One RECORDS_DELIVERED entry per consumer, view and source partition for a settling round.

    At a steady rate each batch holds a few records, and an entry per batch would make
    the audit log the bus's busiest topic; the entries of one round are merged, counts
    summed and offset ranges joined (batches of a partition are contiguous). Every other
    entry is kept as it is, in order.
    """
    out: list[Draft] = []
    merged: dict[tuple[Any, ...], int] = {}  # key -> index in out
    for d in drafts:
        if d.action is not Action.RECORDS_DELIVERED:
            out.append(d)
            continue
        fixed = tuple(sorted((k, v) for k, v in d.details.items() if k not in _VARYING))
        key = (d.consumer, d.resource, d.grant_id, d.purpose, fixed)
        at = merged.get(key)
        if at is None:
            merged[key] = len(out)
            out.append(d)
            continue
        first = out[at]
        a, b = first.details, d.details
        start = min(int(a["offsets"].split("-")[0]), int(b["offsets"].split("-")[0]))
        end = max(int(a["offsets"].split("-")[1]), int(b["offsets"].split("-")[1]))
        details = dict(a)
        details["record_count"] = str(int(a["record_count"]) + int(b["record_count"]))
        details["filtered_count"] = str(int(a["filtered_count"]) + int(b["filtered_count"]))
        details["offsets"] = f"{start}-{end}"
        if a.get(KEY_HASHES) or b.get(KEY_HASHES):
            details[KEY_HASHES] = ",".join(h for h in (a.get(KEY_HASHES), b.get(KEY_HASHES)) if h)
        out[at] = replace(first, details=details)
    return out


class PendingDrafts:
    """Audit entries gathered since the last batch was handed over; the next one carries them."""

    def __init__(self) -> None:
        self._drafts: list[Draft] = []

    def add(self, draft: Draft) -> None:
        self._drafts.append(draft)

    def take(self) -> list[Draft]:
        """Every entry gathered so far, oldest first; none is left."""
        drafts, self._drafts = self._drafts, []
        return drafts

    def mark(self) -> int:
        """A point to :meth:`drop_from` if what is gathered after it must not be written."""
        return len(self._drafts)

    def drop_from(self, mark: int) -> None:
        del self._drafts[mark:]

    def __len__(self) -> int:
        return len(self._drafts)


@dataclass
class Routed:
    """A routed batch waiting to be settled: acks, audit entries, offsets to commit."""

    futures: list[Any]
    drafts: list[Draft]
    tps: list[Any]
    offsets: dict[Any, int]
    count: int
    started: float | None  # perf_counter at the fetch (None: audit entries only)
    routed_at: float | None  # monotonic time it was handed to the producer


class Settler:
    """Settles routed batches in order, in a background task, a round at a time.

    ``consumer`` (its commits and highwater marks) and ``audit`` (the writer of the
    entries) are set when the router starts; ``routed`` counts source records once
    committed.
    """

    def __init__(self, metrics: RouterMetrics) -> None:
        self.metrics = metrics
        self.drafts = PendingDrafts()
        self.routed = 0
        self.consumer: Any = None
        self.audit: AuditWriter | None = None
        #: batches routed but not yet acknowledged, audited and committed, oldest first
        self._unsettled: deque[Routed] = deque()
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # pulsed at the end of every settling round
        self._last_round = 0.0  # monotonic start of the last settling round

    @property
    def waiting(self) -> int:
        """Batches handed over and not settled yet."""
        return len(self._unsettled)

    @property
    def oldest_routed_at(self) -> float | None:
        """Monotonic time the oldest unsettled batch was handed to the producer, if any."""
        return self._unsettled[0].routed_at if self._unsettled else None

    def add(
        self,
        futures: list[Any],
        tps: Iterable[Any],
        offsets: dict[Any, int],
        count: int,
        started: float | None,
    ) -> None:
        """Settle a routed batch (and every audit entry pending) after the ones before it.

        ``started`` is the perf_counter time of its fetch (for the latency histogram),
        None for a batch of audit entries only.
        """
        routed_at = time.monotonic() if started is not None else None
        self._unsettled.append(
            Routed(futures, self.drafts.take(), list(tps), offsets, count, started, routed_at)
        )
        if self._task is None:
            self._task = asyncio.create_task(self._settle_loop())

    async def _settle_loop(self) -> None:
        """Settle what was routed, all that is waiting at once, until nothing waits.

        For each round: every delivery and dead letter acknowledged, then every audit
        entry (one write), then the offsets committed (one commit). A round takes
        every batch routed meanwhile, so at a steady rate there is about one commit
        and one audit write in flight, however small the batches.
        """
        while self._unsettled:
            # at most one round every SETTLE_INTERVAL_S: the deliveries are already on
            # their way; what waits is their acks, the audit write and the commit, and
            # fewer of those leave the broker more time for fetches (lower latency)
            wait = self._last_round + SETTLE_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_round = time.monotonic()
            jobs = list(self._unsettled)
            for job in jobs:
                for fut in job.futures:
                    await fut
            drafts = merge_deliveries([d for job in jobs for d in job.drafts])
            if drafts and self.audit is not None:
                await (await self.audit.send(drafts)).acknowledged()
            offsets: dict[Any, int] = {}
            for job in jobs:
                offsets.update(job.offsets)  # later batches of a partition have later offsets
            committed = await self._commit(offsets, len(jobs))
            self._settled_round(jobs, offsets, committed)
        self._task = None

    async def _commit(self, offsets: dict[Any, int], batches: int) -> bool:
        """Commit the round's offsets; False if the group rebalanced meanwhile."""
        if not offsets:
            return True
        try:
            # a partition taken from this router by a rebalance since the round was routed
            # cannot be committed here (aiokafka: IllegalStateError): its new owner routes
            # it again from its last committed offset
            mine = self.consumer.assignment()
            gone = [tp for tp in offsets if tp not in mine]
            if gone:
                log.warning(
                    "offsets of %s not committed: no longer assigned to this router, their "
                    "records will be routed again by the new owner",
                    ", ".join(f"{tp.topic}[{tp.partition}]" for tp in gone),
                )
                offsets = {tp: off for tp, off in offsets.items() if tp in mine}
                if not offsets:
                    self.metrics.uncommitted_batches.inc(batches)
                    return False
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the group rebalanced (this router was too slow to heartbeat, or one
            # joined): the partitions start again from their committed offsets, here
            # or at their new owner, so these records are routed again, not lost
            log.warning(
                "offsets of %d routed batches not committed, their records will be "
                "routed again: %s",
                batches,
                exc,
            )
            self.metrics.uncommitted_batches.inc(batches)
            return False
        return True

    def _settled_round(self, jobs: list[Routed], offsets: dict[Any, int], committed: bool) -> None:
        done = time.perf_counter()
        for job in jobs:
            self._unsettled.popleft()
            if job.started is not None:
                self.metrics.batch_latency.observe(done - job.started)
            if committed:
                self.routed += job.count
        for tp, offset in offsets.items():
            hw = self.consumer.highwater(tp)
            if hw is not None:
                self.metrics.lag.labels(tp.topic).set(max(0, hw - offset))
        self._settled.set()
        self._settled.clear()

    def raise_if_failed(self) -> None:
        """Raise what made settling fail, if it did; nothing after that batch committed."""
        task = self._task
        if task is not None and task.done():
            self._task = None
            task.result()

    async def settle(self) -> None:
        """Wait until every batch handed over is delivered, audited and committed."""
        while self._task is not None:
            await asyncio.shield(self._task)
            self.raise_if_failed()

    async def wait_for_room(self, most: int) -> None:
        """Back-pressure: wait for settling rounds until at most ``most`` batches wait."""
        while len(self._unsettled) > most and self._task is not None:
            waiter = asyncio.ensure_future(self._settled.wait())
            try:
                await asyncio.wait(
                    [waiter, self._task], timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
            self.raise_if_failed()

    async def finish_round(self) -> None:
        """Wait for the settling under way to end; a failure is raised later, by the router."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def write_pending(self) -> None:
        """Write the audit entries gathered so far and wait until every one is acknowledged."""
        if not self.drafts or self.audit is None:
            return
        pending = await self.audit.send(self.drafts.take())
        await pending.acknowledged()

    async def close(self) -> None:
        """At stop: settle what was routed, then write what was noticed since (bounded waits).

        What cannot be settled is dropped and logged: it was not committed, so it is
        routed again by whichever router owns its partitions next.
        """
        if self._unsettled:
            try:  # what was routed: delivered, audited and committed before the clients close
                await asyncio.wait_for(self.settle(), timeout=30)
            except (TimeoutError, ExchangeError, KafkaError) as exc:
                log.error("routed batches not settled at stop (they will be routed again): %s", exc)
            finally:
                if self._task is not None:
                    self._task.cancel()
                self._unsettled.clear()
        if self.drafts and self.audit is not None:
            try:  # what was noticed but not written yet (no batch came after it)
                await asyncio.wait_for(self.write_pending(), timeout=5)
            except (TimeoutError, ExchangeError, KafkaError) as exc:
                log.error("audit entries not written at stop: %s", exc)


class SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions go to another router, settle what was routed from them.

    The batches still in flight would otherwise fail to commit and be routed
    again by the new owner (duplicates, not losses); settling first avoids that.
    A batch that fails here raises at the router's next ``route_once``.
    """

    def __init__(
        self, settler: Settler, group: str, assigned: Callable[[], None] | None = None
    ) -> None:
        self.settler = settler
        self.group = group
        self.assigned = assigned  # told after every assignment (backfills follow partitions)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("partitions revoked from this router: %s", partitions(revoked))
        await self.settler.finish_round()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info(
            "partitions assigned to this router (group %s): %s",
            self.group,
            partitions(assigned) or "none",
        )
        if self.assigned is not None:
            self.assigned()


def partitions(tps: Any) -> str:
    """``topic[0,1,2] other[0]``: source partitions, one log line whatever their number."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(by_topic.items()))

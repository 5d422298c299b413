"""The broker watchdog: how long the broker has kept the router waiting, logged and counted.

A task of its own, checking every second: when the broker stalls, routing
itself waits (for a fetch, for room in the producer's queue), and could not
report it. A wait of ``STALL_S`` or more is a stall: logged once when it
begins and once when the broker answers again, and counted.

Public surface: :class:`BrokerWatchdog` (``start``, ``stop``, ``check``) and
:data:`STALL_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from exchange.control.state import ControlFollower
from exchange.metrics import RouterMetrics
from exchange.router.settle import Settler

# the router's one logger: its log lines read as they did before the split
log = logging.getLogger("exchange.router.loop")

STALL_S = 5.0  # a wait for the broker longer than this is a stall: logged and counted


class BrokerWatchdog:
    """Watches the router's consumer, its control follower and its settle pipeline."""

    def __init__(
        self, consumer: Any, follower: ControlFollower, settler: Settler, metrics: RouterMetrics
    ) -> None:
        self.consumer = consumer
        self.follower = follower
        self.settler = settler
        self.metrics = metrics
        self._stalled_since: float | None = None  # monotonic time the current stall began
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="broker-watchdog")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.check()
            except Exception:  # never let the watchdog take the router down
                log.exception("broker watchdog failed")

    def check(self) -> float:
        """Measure how long the broker has kept the router waiting; log and count stalls.

        Two signs, whichever is older: the last fetch answer for any assigned source
        partition or control topic (answers come every few ms, data or not), and the
        oldest routed batch whose deliveries are not acknowledged yet. Returns the wait.
        """
        now = time.monotonic()
        waited = 0.0
        stamps = [
            t
            for tp in self.consumer.assignment()
            if (t := self.consumer.last_poll_timestamp(tp)) is not None
        ]
        control = self.follower.last_answer_ms()  # answers even before a group assignment
        if control is not None:
            stamps.append(control)
        if stamps:
            waited = max(0.0, time.time() - max(stamps) / 1000)
        routed_at = self.settler.oldest_routed_at
        if routed_at is not None:
            waited = max(waited, now - routed_at)
        self.metrics.broker_wait.set(waited)
        if waited >= STALL_S and self._stalled_since is None:
            self._stalled_since = now - waited
            self.metrics.broker_stalls.inc()
            log.warning(
                "broker stall: no answer from the broker for %.1f s (%d routed batches wait "
                "for acknowledgement); routing resumes by itself when it answers",
                waited,
                self.settler.waiting,
            )
        elif waited < STALL_S and self._stalled_since is not None:
            log.warning("broker answering again after a stall of %.1f s", now - self._stalled_since)
            self._stalled_since = None
        return waited

"""What the router's watches share: a first step in the background, then a check every interval.

A watch (disputes left unanswered, resources gone stale) must never keep the
router from routing: :meth:`PeriodicWatch.start` returns at once, the watch's
:meth:`~PeriodicWatch.prepare` (connect, read what is there) runs in a task
of its own, :attr:`~PeriodicWatch.ready` is set when it is over (tests wait
for it), and :meth:`~PeriodicWatch.check` then runs every ``interval_s``, or
whenever it is called (with the watch's ``clock``: tests set it). A failed
check is logged and tried again at the next interval.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from exchange.audit.entry import Draft
from exchange.control.state import ControlState

log = logging.getLogger(__name__)
CHECK_INTERVAL_S = 60.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PeriodicWatch(abc.ABC):
    """A background check of the router; subclasses say what to prepare and what to check."""

    #: named in its task and its log lines
    name = "watch"

    def __init__(
        self,
        state: ControlState,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.state = state
        self.interval_s = interval_s
        self.clock = clock
        self._write: Callable[[list[Draft]], Awaitable[Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: set once :meth:`prepare` is over (whether it succeeded or not)
        self.ready = asyncio.Event()

    async def start(self, write: Callable[[list[Draft]], Awaitable[Any]]) -> None:
        """Prepare (in the background: routing does not wait for it), then check every
        ``interval_s``; audit entries go to ``write``."""
        self._write = write
        self.ready.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close()

    async def _run(self) -> None:
        try:
            prepared = await self.prepare()
        finally:
            self.ready.set()
        if not prepared:
            return
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:
                log.warning("%s: check failed", self.name, exc_info=True)

    @abc.abstractmethod
    async def prepare(self) -> bool:
        """What the first check needs; False: the watch cannot work (it said why in the log)."""

    @abc.abstractmethod
    async def check(self, at: dt.datetime | None = None) -> list[Draft]:
        """Check now (``at``: the watch's clock if None); returns the entries it wrote."""

    async def close(self) -> None:  # noqa: B027  # most watches open nothing
        """Release what :meth:`prepare` opened (after the task stopped)."""

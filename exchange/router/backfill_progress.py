"""Writing backfill progress to ``gov.ctl.backfill``, in order, each after what it reports.

A progress record that says "delivered through offset N" is written only once
every record it covers is acknowledged (:meth:`ProgressWriter.after`): a router
that resumes from it after a crash loses nothing, and re-delivers at most what
was in flight (the at-least-once window). Records are written one after the
other from one task, so a later one never lands before an earlier one.

Also here: the rule that limits how often a consumer may ask for a resync (the
catalog's ``resync_interval_hours``), and the audit entry of a refused one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.bus import topics
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog
from exchange.router.backfill_state import (
    SCHEMAS,
    BackfillBook,
    Progress,
    ResyncRequest,
    encode_progress,
)
from exchange.router.settle import PendingDrafts

if TYPE_CHECKING:
    from exchange.router.backfill_scan import BackfillScan

log = logging.getLogger(__name__)
#: longest wait at stop for the scans still closing in the background
CLOSE_S = 5.0


def resync_refusal(
    request: ResyncRequest, prev: Progress | None, catalog: Catalog, at: dt.datetime
) -> str | None:
    """Why ``request`` is refused (the catalog's resync limit), or None if it may run."""
    res = catalog.resources.get(request.resource)
    hours = res.resync_interval_hours if res is not None else None
    if hours is None or prev is None or prev.trigger != "resync":
        return None
    since = at - prev.at
    if since >= dt.timedelta(hours=hours):
        return None
    return (
        f"{request.consumer} had its full view of {request.resource} again "
        f"{since.total_seconds() / 3600:.1f} h ago; the provider allows a resync every "
        f"{hours} h (resync_interval_hours in the catalog)"
    )


def _logged(written: asyncio.Future[Any]) -> None:
    if not written.cancelled() and written.exception() is not None:
        log.warning("backfill progress not written: %s", written.exception())


class ProgressWriter:
    """Writes :class:`Progress` records in order, each after the deliveries it reports."""

    def __init__(self, instance: str, book: BackfillBook) -> None:
        self.instance = instance
        self.book = book  # what is written is noted there at once
        self.refused: set[tuple[str, int]] = set()  # (request, partition) refused here
        self._queue: asyncio.Queue[tuple[list[Any], Progress | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._producer: Any = None
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self, producer: Any, registry: SchemaRegistry) -> None:
        self._producer = producer
        await registry.register_all(producer, SCHEMAS)
        self._task = asyncio.create_task(self._write_loop(), name="backfill-progress")

    @property
    def pending(self) -> int:
        """Progress records queued and not yet handed to the producer."""
        return self._queue.qsize()

    def write(self, progress: Progress) -> None:
        """Write ``progress`` after every record queued before it."""
        self.book.note(progress)
        self._queue.put_nowait(([], progress))

    def after(self, futures: list[Any], progress: Progress) -> None:
        """Write ``progress`` once ``futures`` (the deliveries it reports) are acknowledged."""
        self.book.note(progress)
        self._queue.put_nowait((futures, progress))

    resync_refusal = staticmethod(resync_refusal)

    def refuse(
        self, request: ResyncRequest, partition: int, reason: str, drafts: PendingDrafts
    ) -> None:
        """Audit a refused resync request once per router and partition."""
        self.refused.add((request.request, partition))
        drafts.add(
            Draft(
                Action.COMMAND_REFUSED,
                actor=request.consumer,
                decision=Decision.DENIED,
                resource=request.resource,
                consumer=request.consumer,
                reason=reason,
                details=detail_map(command="resync", request=request.request, partition=partition),
            )
        )

    def close_later(self, scan: BackfillScan) -> None:
        task = asyncio.create_task(scan.stop())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _write_loop(self) -> None:
        while True:
            futures, progress = await self._queue.get()
            try:
                for fut in futures:
                    await fut
                if progress is not None:  # queued in order; one partition keeps the order
                    written = await self._producer.send(
                        topics.BACKFILL, key=progress.key, value=encode_progress(progress)
                    )
                    written.add_done_callback(_logged)
            except KafkaError as exc:
                # not written: a resume starts from the progress written before (re-delivers
                # more, loses nothing); the batch's own failure stops the router anyway
                log.warning("backfill progress not written: %s", exc)
            finally:
                self._queue.task_done()

    async def stop(self) -> None:
        """Write what is queued (bounded wait), then stop; idempotent."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=10)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._closing:  # scans closing in the background: a bounded wait, then left
            _, late = await asyncio.wait(list(self._closing), timeout=CLOSE_S)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d backfill scan(s) did not close within %.0f s", len(late), CLOSE_S)

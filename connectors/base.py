"""The lifecycle every connector follows, its progress and its metrics.

::

    setup()  check the configuration against the catalog, the database or the
             file; moves no data and writes nothing (``exchange connect check``)
    start()  setup, then open clients and create what is missing (sink table,
             checkpoint table)
    poll()   move one batch: rows to the bus (source), records to the table
             (sink); returns how many items it handled, 0 when there was nothing
    flush()  make what poll() moved durable: the source saves its position
             after the broker acknowledged the batch; the sink commits its
             database transaction, then the Kafka offsets
    stop()   close everything (idempotent); anything polled but not flushed
             is simply moved again next time (at-least-once)

:meth:`Connector.run` loops poll → flush until asked to stop, until the
connector is finished (a file import), or until it has been idle for a
while. Connectors are also async context managers (start/stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, Self

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConnectorMetrics:
    """Prometheus metrics of every connector of a process, labelled by connector name."""

    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "gov_exchange_connector"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rows_read = Counter(
            f"{prefix}_rows_read",
            "Rows read from a database, lines from a file or records from Kafka",
            ["connector"],
            registry=r,
        )
        self.published = Counter(
            f"{prefix}_records_published",
            "Records published to the bus and acknowledged by the broker",
            ["connector"],
            registry=r,
        )
        self.written = Counter(
            f"{prefix}_rows_written",
            "Rows upserted into a sink table (committed) or lines written to an export file",
            ["connector"],
            registry=r,
        )
        self.skipped = Counter(
            f"{prefix}_rows_skipped",
            "Rows whose soft-delete column marks them deleted: published as deletions",
            ["connector"],
            registry=r,
        )
        self.deleted = Counter(
            f"{prefix}_rows_deleted",
            "Rows a sink deleted: the record was deleted by its provider or left the view",
            ["connector"],
            registry=r,
        )
        self.checkpoints = Counter(
            f"{prefix}_checkpoints",
            "Positions saved (sources) or offset commits after a database commit (sinks)",
            ["connector"],
            registry=r,
        )
        self.last_checkpoint = Gauge(
            f"{prefix}_last_checkpoint_timestamp_seconds",
            "Unix time of the last saved position or committed batch",
            ["connector"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            f"{prefix}_batch_seconds",
            "Time to move one batch, from reading it to it being durable",
            ["connector"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.rows = Counter(
            f"{prefix}_rows",
            "Rows a connector moved (read by a source, received by a sink, lines of a file)",
            ["connector"],
            registry=r,
        )
        self.snapshot_remaining = Gauge(
            f"{prefix}_snapshot_remaining_rows",
            "Rows a source's first load (snapshot) still has to read, estimated from the "
            "database's table statistics; 0 once it has caught up",
            ["connector"],
            registry=r,
        )
        self.errors = Counter(
            f"{prefix}_errors", "Errors that stopped a connector", ["connector"], registry=r
        )
        self.running = Gauge(
            f"{prefix}_running", "1 while the connector runs", ["connector"], registry=r
        )


@dataclass
class Progress:
    """What a connector did so far, for the progress lines and for tests."""

    rows_read: int = 0
    published: int = 0
    written: int = 0
    skipped: int = 0
    checkpoint: str | None = None
    state: str = "new"
    #: rows a first load (snapshot) is expected to read in all, from table statistics;
    #: None when not known or not a first load
    estimated_total: int | None = None
    #: (monotonic time, rows read) of the recent batches, for the rate
    samples: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=RATE_SAMPLES), repr=False
    )

    def sample(self, now: float) -> None:
        self.samples.append((now, self.rows_read))

    def rate(self, now: float | None = None) -> float | None:
        """Rows read per second over the last :data:`RATE_WINDOW_S` seconds (None: too few)."""
        if len(self.samples) < 2:
            return None
        now = time.monotonic() if now is None else now
        last = self.samples[-1]
        first = next((s for s in self.samples if now - s[0] <= RATE_WINDOW_S), last)
        if first is last:
            first = self.samples[-2]
        span = last[0] - first[0]
        return (last[1] - first[1]) / span if span > 0 else None

    def remaining(self) -> int | None:
        if self.estimated_total is None:
            return None
        return max(self.estimated_total - self.rows_read, 0)

    def eta(self, now: float | None = None) -> str:
        """The first load's rows done of the estimated total, rate and time left."""
        rate, left = self.rate(now), self.remaining()
        parts = []
        if self.estimated_total is not None:
            total = max(self.estimated_total, self.rows_read)
            percent = 100 * self.rows_read / total if total else 100.0
            parts.append(f"{self.rows_read:,} of ~{total:,} rows ({percent:.0f}%)")
        if rate is not None:
            parts.append(f"{rate:,.0f} rows/s")
            if left is not None and rate > 0:
                parts.append(f"{_duration(left / rate)} left")
        return ", ".join(parts)

    def status(self, name: str) -> str:
        """Short form for a terminal's status line."""
        if self.estimated_total is not None and self.state in ("running", "new"):
            return f"[{name}] first load {self.eta()}"
        moved = self.published or self.written
        rate = self.rate()
        shown = f", {rate:,.0f} rows/s" if rate and self.state == "running" else ""
        return f"[{name}] {self.state}, read {self.rows_read:,}, moved {moved:,}{shown}"

    def line(self, name: str) -> str:
        parts = [f"[{name}] {self.state}", f"read {self.rows_read}"]
        if self.published:
            parts.append(f"published {self.published}")
        if self.written:
            parts.append(f"written {self.written}")
        if self.skipped:
            parts.append(f"deleted {self.skipped}")
        parts.append(f"checkpoint {self.checkpoint or '-'}")
        if self.estimated_total is not None and self.state in ("running", "new"):
            parts.append(f"first load: {self.eta()}")
        return ", ".join(parts)


#: how many recent batches, and over how many seconds, the rate is taken
RATE_SAMPLES = 256
RATE_WINDOW_S = 30.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Connector(ABC):
    """One connector: a source or a sink between a department system and the bus."""

    kind: ClassVar[str]
    #: True: :meth:`poll` hands its batch to a write that runs while the next batch is read,
    #: and :meth:`flush` (which :meth:`step` then leaves out) waits for what was handed over
    pipelined: ClassVar[bool] = False

    def __init__(self, name: str, metrics: ConnectorMetrics | None = None) -> None:
        self.name = name
        self.metrics = metrics or ConnectorMetrics()
        self.progress = Progress()
        #: a one-shot connector (file import or export) sets this when it is done
        self.finished = False
        #: false while the connector cannot receive anything yet (a sink joining its group)
        self.ready = True
        #: how long run() waits after a poll that found nothing
        self.poll_interval_s = 0.5
        #: what the operator should know before it starts (printed by check and run)
        self.notes: list[str] = []

    @abstractmethod
    async def setup(self) -> list[str]:
        """Check the configuration against catalog, database or file; returns what was found.

        Moves no data and writes nothing; raises a :class:`ConnectorConfigError`
        naming the column and field (or file and line) of the first problem.
        """

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def poll(self) -> int: ...

    @abstractmethod
    async def flush(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def step(self) -> int:
        """poll() then flush(), timed; returns the items handled."""
        started = time.perf_counter()
        n = await self.poll()
        if n:
            if not self.pipelined:
                await self.flush()
            self.metrics.batch_seconds.labels(self.name).observe(time.perf_counter() - started)
            self.metrics.rows.labels(self.name).inc(n)
            self.progress.sample(time.monotonic())
        return n

    async def run(
        self, stop: asyncio.Event | None = None, *, idle_exit_s: float | None = None
    ) -> None:
        """Move batches until ``stop`` is set, the connector is finished, or it was idle for
        ``idle_exit_s`` seconds (None: never stop for idleness)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        last_activity: float | None = None
        self.metrics.running.labels(self.name).set(1)
        self.progress.state = "running" if self.ready else "waiting for partitions"
        self.progress.sample(time.monotonic())
        try:
            while not stop.is_set() and not self.finished:
                n = await self.step()
                now = loop.time()
                if n or (last_activity is None and self.ready):
                    last_activity = now
                if n:
                    self.progress.state = "running"
                    continue
                if self.finished:
                    break
                if self.ready:
                    self.progress.state = "idle"
                wait = self.poll_interval_s
                if idle_exit_s is not None and last_activity is not None:
                    remaining = idle_exit_s - (now - last_activity)
                    if remaining <= 0:
                        break
                    wait = min(wait, remaining)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
            self.progress.state = "finished" if self.finished else "stopped"
        except asyncio.CancelledError:
            self.progress.state = "stopped"
            raise
        except BaseException:
            self.progress.state = "failed"
            self.metrics.errors.labels(self.name).inc()
            raise
        finally:
            self.metrics.running.labels(self.name).set(0)

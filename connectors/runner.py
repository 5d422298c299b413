"""Build the connectors of a config file, check them, and run them side by side.

The retry decision lives here, in one place: a connector that fails with
a retriable error (its database or the broker went away) after it had
started is stopped and started again with growing pauses; any other error
stops every connector of the file, each after the batch it is moving.
Errors while starting are never retried, so a wrong password or an
unreachable database is reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from aiokafka.errors import KafkaError

from connectors.base import Connector, ConnectorMetrics
from connectors.config import (
    DbSinkConfig,
    DbSourceConfig,
    FileExportConfig,
    FileImportConfig,
    Loaded,
    resolve_database,
)
from connectors.db_sink import DbSink
from connectors.db_source import DbSource
from connectors.errors import ConnectorConfigError
from connectors.files import FileExport, FileImport
from exchange.bus.connection import Connection
from exchange.control import state as control
from exchange.control.state import NO_CATALOG
from exchange.errors import BrokerUnavailable, ExchangeError

log = logging.getLogger(__name__)

MAX_RETRIES = 5
MAX_BACKOFF_S = 30.0
STATUS_EVERY_S = 0.25  # how often a terminal's status line is redrawn


async def build(
    loaded: Loaded,
    bus: Connection,
    *,
    environ: Mapping[str, str],
    metrics: ConnectorMetrics | None = None,
    only: list[str] | None = None,
) -> list[Connector]:
    """One connector per entry of the file (or of ``only``), against the catalog in force."""
    metrics = metrics or ConnectorMetrics()
    state = await control.load(bus)
    if state.snapshot is None:
        raise ExchangeError(NO_CATALOG)
    names = [c.name for c in loaded.connectors]
    for name in only or []:
        if name not in names:
            raise ConnectorConfigError(
                f"no connector named {name!r} (the file has: {', '.join(names)})"
            )
    out: list[Connector] = []
    for cfg in loaded.connectors:
        if only and cfg.name not in only:
            continue
        spot = loaded.spots[cfg.name]
        if isinstance(cfg, DbSourceConfig | DbSinkConfig):
            target = resolve_database(cfg.database, environ)
        if isinstance(cfg, DbSourceConfig):
            out.append(
                DbSource(
                    cfg,
                    bus=bus,
                    catalog=state.catalog,
                    target=target,
                    metrics=metrics,
                    spot=spot,
                )
            )
        elif isinstance(cfg, DbSinkConfig):
            out.append(DbSink(cfg, bus=bus, state=state, target=target, metrics=metrics, spot=spot))
        elif isinstance(cfg, FileImportConfig):
            out.append(
                FileImport(
                    cfg,
                    bus=bus,
                    catalog=state.catalog,
                    metrics=metrics,
                    spot=spot,
                )
            )
        elif isinstance(cfg, FileExportConfig):
            out.append(FileExport(cfg, bus=bus, state=state, metrics=metrics, spot=spot))
        if isinstance(cfg, DbSourceConfig | DbSinkConfig) and target.password_note:
            line = spot.line("database", "password_env")
            where = f"{spot.file}:{line}" if spot.file and line else spot.file or ""
            out[-1].notes.append(
                f"{cfg.name}: {target.password_note}" + (f" ({where})" if where else "")
            )
    return out


async def check(connectors: list[Connector]) -> tuple[list[str], list[ExchangeError]]:
    """Run every connector's setup (no data moves); returns what was found and every error."""
    lines: list[str] = []
    errors: list[ExchangeError] = []
    for c in connectors:
        lines.extend(c.notes)
        try:
            lines.extend(await c.setup())
        except ExchangeError as exc:
            errors.append(exc)
        finally:
            await c.stop()
    return lines, errors


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def classify(exc: Exception) -> ExchangeError | None:
    """The bus's error for ``exc``: Kafka client errors become a retriable
    :class:`BrokerUnavailable`; anything else not ours is None (a bug: let it show)."""
    if isinstance(exc, ExchangeError):
        return exc
    if isinstance(exc, KafkaError | OSError):
        return BrokerUnavailable(f"Kafka: {exc or type(exc).__name__}")
    return None


async def _start(c: Connector) -> None:
    try:
        await c.start()
    except Exception as exc:
        error = classify(exc)
        if error is None or error is exc:
            raise
        raise error from exc


async def _supervise(
    c: Connector, stop: asyncio.Event, idle_exit_s: float | None, echo: Callable[[str], None]
) -> None:
    """Run one connector; restart it after a retriable error, with growing pauses."""
    attempt = 0
    while True:
        try:
            await c.run(stop, idle_exit_s=idle_exit_s)
            return
        except Exception as exc:
            error = classify(exc)
            if error is None:
                raise
            if not error.retriable or attempt >= MAX_RETRIES or stop.is_set():
                if error is exc:
                    raise
                raise error from exc
        attempt += 1
        pause = min(MAX_BACKOFF_S, 2.0**attempt)
        echo(f"[{c.name}] {error}; retrying in {pause:.0f} s (attempt {attempt} of {MAX_RETRIES})")
        await c.stop()
        await _sleep(stop, pause)
        if stop.is_set():
            return
        await _start(c)


async def run_all(
    connectors: list[Connector],
    *,
    stop: asyncio.Event,
    echo: Callable[[str], None],
    idle_exit_s: float | None = None,
    progress_every_s: float = 5.0,
    status: Callable[[str], None] | None = None,
) -> None:
    """Start every connector, run them until ``stop`` (or idle/finished), then stop them all.

    Prints each connector's progress every ``progress_every_s`` seconds and at the end;
    with ``status`` (a terminal's status line), hands it every connector's progress
    several times a second instead.
    """
    started: list[Connector] = []
    reporter: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        for c in connectors:
            for note in c.notes:
                echo(f"[{c.name}] note: {note.removeprefix(c.name + ': ')}")
            await _start(c)
            started.append(c)
            echo(f"[{c.name}] started ({c.kind})")

        async def report() -> None:
            shown: dict[str, str] = {}
            while status is not None:
                status("  ".join(c.progress.status(c.name) for c in connectors))
                await asyncio.sleep(STATUS_EVERY_S)
            while True:
                await asyncio.sleep(progress_every_s)
                for c in connectors:
                    line = c.progress.line(c.name)
                    if shown.get(c.name) != line:  # an idle connector is not repeated
                        shown[c.name] = line
                        echo(line)

        reporter = asyncio.create_task(report(), name="connector-progress")
        tasks = [
            asyncio.create_task(_supervise(c, stop, idle_exit_s, echo), name=f"connector-{c.name}")
            for c in connectors
        ]
        failure: BaseException | None = None
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                exc = t.exception()
                if exc is not None and failure is None:
                    failure = exc
                    stop.set()  # the others end after the batch they are moving
        if failure is not None:
            raise failure
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        for c in started:
            try:
                await c.stop()
            except Exception:
                log.exception("stopping connector %s failed", c.name)
        for c in connectors:
            echo(c.progress.line(c.name))

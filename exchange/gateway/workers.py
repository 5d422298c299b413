"""The gateway served by several worker processes (``exchange gateway --workers N``).

One Python process answers at most what one core allows (about 1,200 lookups/s on
the 2-core machine). With ``--workers N`` a supervisor process:

* keeps the latest-state store: checks it (rebuilding a damaged one), reads the
  source topics into it and follows them, one writer for the whole gateway; the
  workers open the same SQLite file as readers (WAL mode: reads never wait for the
  writer; a commit is seen by the next read in every worker);
* starts N workers (multiprocessing's ``spawn``: fresh interpreters, nothing of the
  supervisor's event loop or Kafka clients inherited) once the store has caught up;
  each binds its own listening socket on the port with ``SO_REUSEPORT``, and the
  kernel spreads new connections evenly across them;
* restarts a worker that dies; if workers die :data:`MAX_DEATHS` times within
  :data:`DEATH_WINDOW_S` (a fault, not an accident), or the store can no longer be
  kept up to date, it stops them all and exits with a non-zero status and the reason,
  rather than serve on half its workers or from a stale store.

Each worker follows the control topics itself (a revoked or expired grant is
refused from its next request), writes its own audit chain (its own writer id: no
two processes append to one hash chain) through a journal of its own (each entry
on disk before its answer, shipped to ``gov.audit`` behind it; a killed worker's
journal is sent by the next worker started), and counts quotas in the table all workers share
(:mod:`exchange.gateway.quota_table`). Their metrics go to one folder, added up
by ``/metrics`` whichever worker answers it (:mod:`exchange.http.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.control.state import ControlFollower, ControlState
from exchange.errors import ExchangeError
from exchange.gateway.materializer import Materializer
from exchange.gateway.service import CONTROL_FETCH_WAIT_MS
from exchange.gateway.store import LatestStore

log = logging.getLogger(__name__)

#: workers dying this often within DEATH_WINDOW_S stop the gateway
MAX_DEATHS = 5
DEATH_WINDOW_S = 60.0
#: how often the supervisor looks at its workers and its store
CHECK_S = 0.2
#: how long a stopping worker may take to finish its requests and audit entries
STOP_S = 15.0
#: how long a worker whose supervisor was killed may take to shut down before it exits
ORPHAN_SHUTDOWN_S = 10.0


def default_workers() -> int:
    """The cores this process may run on: one worker per core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def quota_path(store: Path) -> Path:
    """The quota table shared by the workers of the gateway whose store is ``store``."""
    return store.with_name(store.name + ".quotas")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, handed to it when it is spawned (pickled)."""

    bus: Connection
    host: str
    port: int
    store: Path
    master_secret: bytes
    #: password files to check against; None: a SCRAM login to the broker
    credentials_dir: Path | None
    partitions: int | None
    #: where every worker writes its metrics (prometheus_client's multiprocess mode)
    metrics_dir: Path
    #: run first in each worker: the command line's logging and audit signer set-up
    setup: Callable[[], None] | None = None


class GatewayStopped(ExchangeError):
    """The supervisor gave up: the reason, for the operator."""


def run_worker(spec: WorkerSpec, index: int, supervisor: int) -> None:
    """A worker process: the gateway app on its own ``SO_REUSEPORT`` socket, store read-only.

    ``supervisor``: the pid of the process that started it, passed in rather than read here:
    a supervisor killed while this worker still imports and builds its app (seconds on a
    loaded machine) would leave ``os.getppid()`` naming the reaper, and the orphan watch
    below would wait for a process that never goes.
    """
    # a thread, not a task: it ends an orphan worker whose event loop is held (a start
    # waiting in a blocking call, a shutdown that never returns), which the watch cannot
    threading.Thread(
        target=_exit_when_orphaned, args=(supervisor,), name="orphan-watch", daemon=True
    ).start()
    if spec.setup is not None:
        spec.setup()
    from exchange.gateway.app import gateway_app
    from exchange.http import auth, server
    from exchange.http.metrics import HttpMetrics

    checker: auth.Authenticator
    if spec.credentials_dir is not None:
        checker = auth.PasswordFiles(spec.credentials_dir)
    else:
        checker = auth.CachedAuthenticator(auth.BrokerLogin(spec.bus))
    app = gateway_app(
        spec.bus,
        auth.Gate(checker),
        spec.store,
        spec.master_secret,
        metrics=HttpMetrics(multiprocess_dir=spec.metrics_dir),
        partitions=spec.partitions,
        materialise=False,
        quota_path=quota_path(spec.store),
    )
    # bound, not listening: the kernel sends it connections only once uvicorn listens on it,
    # after the app has started (a starting worker would otherwise hold them unanswered)
    sock = server.reuse_port_socket(spec.host, spec.port, listen=False)
    log.info("gateway worker %d (pid %d) on %s:%d", index, os.getpid(), spec.host, spec.port)

    uvicorn = server.Server(server.config(app, spec.host, spec.port))

    async def serve() -> None:
        watch = asyncio.create_task(_watch_supervisor(app, uvicorn, supervisor), name="watch")
        try:
            await uvicorn.serve(sockets=[sock])
        finally:
            watch.cancel()

    with asyncio.Runner(loop_factory=server.event_loop) as runner:
        runner.run(serve())


async def _watch_supervisor(app: Any, uvicorn: Any, supervisor: int) -> None:
    """Every second: this worker's gauges into the metrics folder (its audit chain's tail);
    and if the supervisor is gone (killed: nobody keeps the store any more), stop."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != supervisor:
            log.error("the gateway's supervisor (pid %d) is gone: this worker stops", supervisor)
            if not uvicorn.started:
                # still starting: its start may wait for a store nobody keeps any more, and
                # uvicorn looks at should_exit only once started; it answered nothing yet
                os._exit(1)
            uvicorn.should_exit = True
            # its shutdown closes the broker's clients; one that hangs (a loaded machine, a
            # broker gone too) must not keep an orphan worker alive: every answer's audit
            # entry was in its journal before it was sent, and what the journal has not
            # shipped the next gateway on this store sends, so nothing is lost by leaving now
            await asyncio.sleep(ORPHAN_SHUTDOWN_S)
            log.error("this worker did not stop within %.0f s: it exits now", ORPHAN_SHUTDOWN_S)
            os._exit(1)
        try:
            app.state.gateway.metrics.audit.heads.write_values()
            app.state.gateway.journal_gauge()
        except Exception:  # a gauge not written this second must not end the watch
            log.exception("this worker's audit gauges could not be written")


def _exit_when_orphaned(supervisor: int) -> None:
    """Exit the worker once its supervisor has been gone for longer than the event loop's
    watch (:func:`_watch_supervisor`) needs to stop it in order."""
    while os.getppid() == supervisor:
        time.sleep(1.0)
    time.sleep(ORPHAN_SHUTDOWN_S + 5.0)
    os._exit(1)


class Supervisor:
    """Keeps the store, runs ``workers`` worker processes, stops on a signal or a fault."""

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        if workers < 1:
            raise ValueError("a gateway needs at least one worker")
        self.spec = spec
        self.workers = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess | None] = [None] * workers
        self._deaths: deque[float] = deque()
        self._stopping = asyncio.Event()
        self.state = ControlState(spec.bus)

    def _catalog(self) -> Catalog | None:
        return self.state.catalog if self.state.snapshot is not None else None

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM; raise :class:`GatewayStopped` on a fault."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        self._check_port()
        store = await asyncio.to_thread(LatestStore, self.spec.store)
        follower = ControlFollower(self.state, fetch_max_wait_ms=CONTROL_FETCH_WAIT_MS)
        materializer: Materializer | None = None
        try:
            await follower.start(follow=True)
            materializer = Materializer(
                self.spec.bus, store, self._catalog, partitions=self.spec.partitions
            )
            await materializer.start()
            await self._caught_up(materializer)
            if self._stopping.is_set():  # stopped while the store caught up
                return
            log.info("store caught up (%d records): %d workers start", store.count(), self.workers)
            for index in range(self.workers):
                self._start(index)
            await self._watch(follower, materializer)
        finally:
            await asyncio.to_thread(self._stop_workers)
            if materializer is not None:
                await materializer.stop()
            await follower.stop()
            store.close()

    def _check_port(self) -> None:
        """Refuse at once a port the workers could not listen on (rather than restart them)."""
        from exchange.http import server

        host, port = self.spec.host, self.spec.port
        try:
            server.reuse_port_socket(host, port, listen=False).close()
        except OSError as exc:
            raise GatewayStopped(f"cannot listen on {host}:{port}: {exc.strerror}") from exc

    async def _caught_up(self, materializer: Materializer) -> None:
        while not materializer.caught_up.is_set():
            if materializer.failed is not None:
                raise GatewayStopped(f"the store cannot be kept up to date: {materializer.failed}")
            if self._stopping.is_set():
                return
            await asyncio.sleep(CHECK_S)

    async def _watch(self, follower: ControlFollower, materializer: Materializer) -> None:
        while not self._stopping.is_set():
            if materializer.failed is not None:
                raise GatewayStopped(
                    f"the store is no longer kept up to date ({materializer.failed}); "
                    "the workers are stopped rather than answer from a stale store"
                )
            if follower.reset is not None:
                raise GatewayStopped(
                    f"the control topics were reset under the gateway ({follower.reset}); "
                    "start it again"
                )
            for index, proc in enumerate(self._procs):
                if proc is not None and not proc.is_alive():
                    self._died(index, proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), CHECK_S)

    def _died(self, index: int, proc: BaseProcess) -> None:
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - DEATH_WINDOW_S:
            self._deaths.popleft()
        _forget_metrics(self.spec.metrics_dir, proc.pid)
        self._procs[index] = None
        how = _exit_status(proc.exitcode)
        if len(self._deaths) >= MAX_DEATHS:
            raise GatewayStopped(
                f"gateway worker {index} (pid {proc.pid}) {how}; workers died {len(self._deaths)} "
                f"times within {DEATH_WINDOW_S:.0f} s: the gateway stops (see the log above)"
            )
        log.error("gateway worker %d (pid %d) %s; starting another", index, proc.pid, how)
        self._start(index)

    def _start(self, index: int) -> None:
        proc = self._ctx.Process(
            target=run_worker,
            args=(self.spec, index, os.getpid()),
            name=f"gateway-worker-{index}",
        )
        proc.start()
        self._procs[index] = proc

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.pid is not None]

    def _stop_workers(self) -> None:
        """SIGTERM to every worker (uvicorn finishes its requests, the audit writer flushes),
        then SIGKILL to any still running after :data:`STOP_S`."""
        procs = [p for p in self._procs if p is not None]
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + STOP_S
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("gateway worker pid %d did not stop in %.0f s: killed", proc.pid, STOP_S)
                proc.kill()
                proc.join()
        self._procs = [None] * self.workers


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _forget_metrics(metrics_dir: Path, pid: int | None) -> None:
    """A dead worker's live gauges leave ``/metrics``; its counters stay in the totals."""
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]


#: the metrics folders of gateway supervisors: ``<temp dir>/<prefix><pid>-<random>``
METRICS_PREFIX = "gov-exchange-gateway-metrics-"
#: the file in a metrics folder its supervisor holds an ``flock`` on while it lives
METRICS_LOCK = "supervisor.lock"


@contextlib.contextmanager
def metrics_folder(parent: Path | None = None) -> Any:
    """A fresh folder for the workers' metrics, named in ``PROMETHEUS_MULTIPROC_DIR`` for the
    workers to inherit (prometheus_client reads it when imported), removed at the end.

    Removed on SIGTERM too, whenever it comes (the supervisor's event loop turns it into a
    clean stop; before and after the loop, it ends the block here). Nothing runs on SIGKILL,
    so the supervisor holds an ``flock`` on a file in its folder while it lives, which the
    kernel releases when it dies however it dies: the folders in ``parent`` (the temporary
    directory) whose lock is free are those of supervisors that are gone, and each start
    removes them (:func:`remove_stale_metrics_folders`).
    """
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    remove_stale_metrics_folders(parent)
    folder = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-", dir=parent))
    lock = os.open(folder / METRICS_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    on_term = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield folder
    finally:
        signal.signal(signal.SIGTERM, on_term)
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def remove_stale_metrics_folders(parent: Path) -> list[Path]:
    """Remove the metrics folders in ``parent`` of gateway supervisors that are gone (killed:
    no clean-up ran); the removed folders. Only this user's; a live supervisor's (its lock
    held) is left alone."""
    removed = []
    for folder in parent.glob(f"{METRICS_PREFIX}*"):
        try:
            st = folder.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        if _stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s: the metrics of a gateway supervisor that is gone", folder)
            removed.append(folder)
    return removed


def _stale(folder: Path) -> bool:
    try:
        fd = os.open(folder / METRICS_LOCK, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        # no lock yet: its supervisor is making it this instant, or was killed doing so
        # (stale if the pid its name starts with is gone); a folder named otherwise (made by
        # an earlier version, which had no lock) may be a live supervisor's: left alone
        pid = folder.name.removeprefix(METRICS_PREFIX).split("-", 1)[0]
        return pid.isdigit() and not Path(f"/proc/{pid}").exists()
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its supervisor lives
        return False
    finally:
        os.close(fd)  # releases the lock if taken
    return True

"""A local journal of audit records: an answer waits for its entry on local disk, not for
the broker, and the entry reaches ``gov.audit`` right behind it.

The gateway answers a request only once the request's audit entry is safe. Waiting for
``gov.audit`` to acknowledge each entry puts a broker round trip (two, when a batch is
already in flight) into every answer; X-Road's security servers, which log every message
they pass, write the log to a local database before answering and archive it later. The
same here, for an :class:`~exchange.audit.writer.AuditWriter` given an
:class:`AuditJournal` as its sender:

* **Durable before the answer.** ``send`` appends the record (the chain's key and the
  entry's Avro bytes, sealed: the hash chain is made before the journal sees it) to the
  journal, an SQLite file of the process's own (WAL, ``synchronous=FULL``: a commit is on
  disk when it returns). The records of one turn of the event loop go in one transaction,
  in a thread of their own (about 0.2 ms on this machine's disk), and the future ``send``
  returns is done once that transaction is committed. A process killed after that, or a
  machine that loses power, leaves the entry in the file. (Holding a turn's records back
  while the transaction before is committed, to share one sync, was measured and not kept:
  the gap it adds between two commits cost two workers 20 % of their closed-loop maximum;
  docs/performance/gateway.md.)
* **Shipped behind the answers.** A task sends the journal's records to ``gov.audit`` in
  order, one record batch in flight at a time (aiokafka's batch API, acks=all), waiting at
  most ``linger_ms`` for more when idle; a failed batch is sent again (after 0.1 s, then
  longer) before anything after it, so the chain reaches the topic in order (a batch sent
  twice leaves duplicates that ``exchange audit verify`` tells apart from insertions: same
  seq, same hash). Shipped records are deleted from the journal in the next append's
  transaction (no sync of their own), or by a deletion of their own when no record has
  been appended for :data:`FORGET_S`: a crash re-sends at most that much.
* **A bounded window.** While the oldest record not yet acknowledged by ``gov.audit`` is
  older than ``window_s`` (:data:`WINDOW_S`), or more than ``max_unshipped`` records wait,
  ``send`` refuses (:class:`AccessLogBehind`) and the gateway answers 503: it never runs
  further ahead of the access log than that.
* **Fail closed.** A transaction that fails (a full or failing disk) fails the sends of its
  turn, and every later send is refused until the process is restarted (``behind`` says
  why): the journal does not guess which of its records reached the disk.
* **Nothing left behind.** Each process holds an exclusive lock on its journal
  (``<name>.lock``, ``flock``) while it runs. At :meth:`AuditJournal.start`, any journal in
  the folder whose lock is free belongs to a process that is gone (killed, or stopped
  before ``gov.audit`` had everything): its records are sent first, in order, and its file
  removed. A clean :meth:`AuditJournal.close` ships what is left (waiting at most
  :data:`CLOSE_WAIT_S`) and removes its own file once it is empty.

What a journal does not cover: a disk lost with its machine before the window's records
were shipped (at most ``window_s`` of answers' entries). Keep the journal folder on the
disk the gateway's store is on, not on a tmpfs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange.bus.partitioner import partition_of
from exchange.errors import ExchangeError

log = logging.getLogger(__name__)

#: how far (seconds) the oldest entry not acknowledged by gov.audit may trail its answer
WINDOW_S = 5.0
#: how many entries may wait for gov.audit before sends are refused (memory bound)
MAX_UNSHIPPED = 100_000
#: how long close() waits for gov.audit to take what is left before leaving it in the file
CLOSE_WAIT_S = 5.0
#: how long start() keeps trying to send a gone process's journal before it gives up
RECOVER_WAIT_S = 60.0
#: how long shipped records may stay in the file when no append comes to delete them
FORGET_S = 1.0
SUFFIX = ".journal"
_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0)


class AccessLogBehind(ExchangeError):
    """Entries wait for ``gov.audit`` longer than the journal's window: refuse to answer."""

    retriable = True


class JournalFile:
    """One process's journal on disk: records in the order appended, deleted once shipped.

    Used from one thread at a time (the journal's own). ``synchronous=FULL`` in WAL mode:
    :meth:`append` returns once its transaction is on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records"
            " (id INTEGER PRIMARY KEY, key BLOB, value BLOB NOT NULL)"
        )

    def last_id(self) -> int:
        row = self._db.execute("SELECT max(id) FROM records").fetchone()
        return int(row[0] or 0)

    def append(self, rows: list[tuple[int, bytes | None, bytes]], forget_upto: int = 0) -> None:
        """Write ``(id, key, value)`` rows in one transaction, durable when this returns;
        the same transaction deletes the records up to id ``forget_upto`` (shipped)."""
        with self._db:
            self._db.execute("BEGIN")
            if forget_upto:
                self._db.execute("DELETE FROM records WHERE id <= ?", (forget_upto,))
            self._db.executemany("INSERT INTO records (id, key, value) VALUES (?, ?, ?)", rows)

    def shipped(self, upto: int) -> None:
        """Forget the records up to id ``upto`` (acknowledged by the broker)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM records WHERE id <= ?", (upto,))

    def records(self) -> list[tuple[int, bytes | None, bytes]]:
        return [
            (int(i), k, v)
            for i, k, v in self._db.execute("SELECT id, key, value FROM records ORDER BY id")
        ]

    def close(self) -> None:
        self._db.close()

    def remove(self) -> None:
        """Close and delete the file (with SQLite's WAL and shared-memory files)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")


def _lock(path: Path) -> int | None:
    """Take ``path``'s exclusive lock without waiting: its descriptor, or None if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int, path: Path, *, remove: bool) -> None:
    if remove:  # removed while held: no other process can take a lock on a file about to go
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    os.close(fd)


@dataclass
class _Record:
    id: int
    key: bytes | None
    value: bytes
    at: float  # when it was journaled (time.monotonic)


class AuditJournal:
    """A sender for :class:`~exchange.audit.writer.AuditWriter` (see the module's docstring).

    ``send(topic, value=..., key=...)`` returns a future done once the record is durable in
    ``directory/<name>.journal``; the records reach ``topic`` through ``producer`` (an
    aiokafka producer the caller starts and stops) in the order sent.
    """

    def __init__(
        self,
        producer: Any,
        topic: str,
        directory: Path,
        *,
        name: str | None = None,
        linger_ms: float = 2.0,
        window_s: float = WINDOW_S,
        max_unshipped: int = MAX_UNSHIPPED,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.directory = directory
        self.name = name or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.linger_s = linger_ms / 1000
        self.window_s = window_s
        self.max_unshipped = max_unshipped
        self._io = ThreadPoolExecutor(1, thread_name_prefix="audit-journal")
        self._file: JournalFile | None = None
        self._lock_fd: int | None = None
        self._next_id = 1
        #: appended this turn of the event loop, not yet handed to the journal's thread
        self._buffer: list[tuple[int, bytes | None, bytes]] = []
        self._buffered: asyncio.Future[None] | None = None
        #: durable in the journal, not yet acknowledged by the broker, oldest first
        self._unshipped: deque[_Record] = deque()
        self._wake = asyncio.Event()
        self._shipper: asyncio.Task[None] | None = None
        self._deleting: asyncio.Future[None] | None = None
        self._shipped_upto = 0
        self._deleted_upto = 0  # deleted from the file (or being deleted)
        self._forget_timer: asyncio.TimerHandle | None = None
        self._partitions: dict[bytes | None, int] = {}
        self._failure: BaseException | None = None  # the journal's file could not be written
        self._closed = False
        #: batches acknowledged by the broker, and records sent from gone processes' journals
        self.batches_sent = 0
        self.recovered = 0

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}{SUFFIX}"

    @property
    def unshipped(self) -> int:
        """Records journaled (or about to be) that ``gov.audit`` has not acknowledged."""
        return len(self._unshipped) + len(self._buffer)

    def behind(self) -> str | None:
        """Why ``send`` refuses now (None: it does not)."""
        if self._failure is not None:
            return f"the audit journal {self.path} cannot be written: {self._failure}"
        if len(self._unshipped) >= self.max_unshipped:
            return (
                f"{len(self._unshipped)} access log entries wait for {self.topic}"
                f" (at most {self.max_unshipped})"
            )
        if self._unshipped:
            age = time.monotonic() - self._unshipped[0].at
            if age > self.window_s:
                return (
                    f"{self.topic} has not acknowledged access log entries for {age:.1f} s"
                    f" (at most {self.window_s:g} s; the broker is unreachable or refusing)"
                )
        return None

    async def start(self) -> None:
        """Lock and open this process's journal; send what gone processes left, then follow."""
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._lock_fd = _lock(self.directory / f"{self.name}.lock")
        if self._lock_fd is None:
            raise ExchangeError(f"the audit journal {self.path} is in use by another process")
        self._file = await loop.run_in_executor(self._io, JournalFile, self.path)
        await self._recover()
        self._shipper = asyncio.create_task(self._ship_forever(), name="audit-journal-ship")

    async def send(
        self, topic: str, *, value: bytes, key: bytes | None = None
    ) -> asyncio.Future[None]:
        """Journal a record: the future is done once it is on disk (or failed)."""
        if topic != self.topic:
            raise ValueError(f"this journal's records go to {self.topic!r}, not {topic!r}")
        if self._closed or self._file is None:
            raise RuntimeError("the audit journal is not open")
        why = self.behind()
        if why is not None:
            raise AccessLogBehind(why)
        if self._buffered is None:
            loop = asyncio.get_running_loop()
            self._buffered = loop.create_future()
            loop.call_soon(self._flush)
        self._buffer.append((self._next_id, key, value))
        self._next_id += 1
        return self._buffered

    def _flush(self) -> None:
        """Hand this turn's records to the journal's thread (one transaction, queued behind
        those handed before)."""
        if not self._buffer:
            return
        rows, done = self._buffer, self._buffered
        self._buffer, self._buffered = [], None
        assert done is not None
        assert self._file is not None
        forget = self._shipped_upto if self._shipped_upto > self._deleted_upto else 0
        if forget:
            self._deleted_upto = forget
        written = asyncio.get_running_loop().run_in_executor(
            self._io, self._file.append, rows, forget
        )
        written.add_done_callback(lambda w: self._written(w, rows, done))

    def _written(
        self,
        written: asyncio.Future[None],
        rows: list[tuple[int, bytes | None, bytes]],
        done: asyncio.Future[None],
    ) -> None:
        exc = written.exception()
        if exc is not None:
            log.error("the audit journal %s cannot be written: %s", self.path, exc)
            self._failure = exc
            for failed in (done, self._buffered):  # and the records waiting for the next one
                if failed is not None and not failed.done():
                    failed.set_exception(exc)
                    failed.exception()  # retrieved: each writer sees it when it waits
            self._buffer, self._buffered = [], None
            return
        now = time.monotonic()
        self._unshipped.extend(_Record(i, k, v, now) for i, k, v in rows)
        self._wake.set()
        if not done.done():
            done.set_result(None)

    async def _ship_forever(self) -> None:
        failures = 0
        while True:
            if not self._unshipped:
                if self._closed and self._buffered is None:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            lingered = time.monotonic() - self._unshipped[0].at
            if lingered < self.linger_s and not self._closed:
                await asyncio.sleep(self.linger_s - lingered)
            try:
                upto = await self._ship_batch(self._unshipped)
            except Exception as exc:
                pause = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning(
                        "audit journal %s: a batch to %s failed (%d times now), sent again in"
                        " %.2f s: %s",
                        self.path,
                        self.topic,
                        failures,
                        pause,
                        exc,
                    )
                await asyncio.sleep(pause)
                continue
            failures = 0
            self._shipped_upto = upto
            self._forget_shipped()

    async def _ship_batch(self, records: deque[_Record]) -> int:
        """Send the oldest records of one key in one batch, wait for the broker's
        acknowledgement, take them off ``records``; the id of the last one."""
        first = records[0]
        partition = await self._partition_of(first.key)
        batch = self.producer.create_batch()
        taken = 0
        for record in records:
            if record.key != first.key:
                break
            if batch.append(timestamp=None, key=record.key, value=record.value) is None:
                if taken == 0:
                    raise ExchangeError(
                        f"an audit record of {len(record.value)} bytes does not fit in a batch"
                    )
                break
            taken += 1
        batch.close()
        acked = await self.producer.send_batch(batch, self.topic, partition=partition)
        await acked
        self.batches_sent += 1
        for _ in range(taken - 1):
            records.popleft()
        return records.popleft().id

    async def _partition_of(self, key: bytes | None) -> int:
        partition = self._partitions.get(key)
        if partition is None:
            partitions = sorted(await self.producer.partitions_for(self.topic))
            partition = partitions[partition_of(key, len(partitions))] if key else partitions[0]
            if len(self._partitions) >= 64:  # bounded: a writer has one key at a time
                self._partitions.clear()
            self._partitions[key] = partition
        return partition

    def _forget_shipped(self) -> None:
        """Have the shipped records deleted from the file: by the next append's transaction,
        or by a deletion of their own if none comes within :data:`FORGET_S`."""
        if self._forget_timer is None:
            self._forget_timer = asyncio.get_running_loop().call_later(
                FORGET_S, self._delete_shipped
            )

    def _delete_shipped(self) -> None:
        self._forget_timer = None
        if self._shipped_upto <= self._deleted_upto or self._file is None:
            return
        if self._deleting is not None and not self._deleting.done():
            self._forget_shipped()  # the last one still running: look again later
            return
        upto = self._deleted_upto = self._shipped_upto
        self._deleting = asyncio.get_running_loop().run_in_executor(
            self._io, self._file.shipped, upto
        )
        self._deleting.add_done_callback(self._deleted)

    def _deleted(self, deleting: asyncio.Future[None]) -> None:
        exc = deleting.exception()
        if exc is not None:  # kept in the file: sent again after a crash (a duplicate)
            log.warning("audit journal %s: shipped records not deleted: %s", self.path, exc)

    async def _recover(self) -> None:
        """Send the records of every journal in the folder no running process holds."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            lock = path.with_suffix(".lock")
            fd = _lock(lock)
            if fd is None:  # a running process's
                continue
            try:
                await self._recover_one(path)
            finally:
                _unlock(fd, lock, remove=not path.exists())

    async def _recover_one(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        gone = await loop.run_in_executor(self._io, JournalFile, path)
        rows = await loop.run_in_executor(self._io, gone.records)
        left: deque[_Record] = deque(_Record(i, k, v, 0.0) for i, k, v in rows)
        if left:
            log.warning(
                "audit journal %s: %d access log entries left by a gone process; sending them"
                " to %s",
                path,
                len(left),
                self.topic,
            )
        deadline = time.monotonic() + RECOVER_WAIT_S
        failures = 0
        while left:
            before = len(left)
            try:
                upto = await self._ship_batch(left)
            except Exception as exc:
                if time.monotonic() > deadline:
                    await loop.run_in_executor(self._io, gone.close)
                    raise ExchangeError(
                        f"the access log entries left in {path} cannot be sent to"
                        f" {self.topic} ({len(left)} left): {exc}"
                    ) from exc
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
                continue
            self.recovered += before - len(left)
            await loop.run_in_executor(self._io, gone.shipped, upto)
        await loop.run_in_executor(self._io, gone.remove)

    async def close(self) -> None:
        """Refuse later records, ship what is journaled (at most :data:`CLOSE_WAIT_S`), and
        remove the journal if nothing is left in it; else keep it for the next start.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        if self._buffered is not None:  # this turn's records: to the file first
            with contextlib.suppress(Exception):
                await asyncio.shield(self._buffered)
        self._wake.set()
        shipper, self._shipper = self._shipper, None
        if shipper is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(shipper), CLOSE_WAIT_S)
            if not shipper.done():
                shipper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await shipper
        if self._forget_timer is not None:
            self._forget_timer.cancel()
            self._forget_timer = None
        if self._deleting is not None:
            with contextlib.suppress(Exception):
                await self._deleting
        file, self._file = self._file, None
        empty = not self._unshipped and self._failure is None
        if file is not None:
            if empty:
                await loop.run_in_executor(self._io, file.remove)
            else:
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(self._io, file.shipped, self._shipped_upto)
                await loop.run_in_executor(self._io, file.close)
                log.warning(
                    "audit journal %s: %d access log entries not acknowledged by %s are kept"
                    " in it; the next gateway started on this store sends them",
                    self.path,
                    len(self._unshipped),
                    self.topic,
                )
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            _unlock(fd, self.directory / f"{self.name}.lock", remove=empty)
        self._io.shutdown(wait=True)


def journals(directory: Path) -> Iterable[Path]:
    """The journal files in ``directory`` (for status and tests)."""
    return sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []

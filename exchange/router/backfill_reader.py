"""The thread a scan reads and renders the source in, off the router's event loop.

Used by the scans that do not get a worker process of their own
(:mod:`exchange.router.backfill_worker`): a backfill of a few records, a
membership rebuild, ``exchange snapshot``.

A backfill reads a partition from its first record and renders each record
through the consumer's view: most of its CPU, and work that, on the router's
event loop, held live routing for as long as each step took (hundreds of
milliseconds on a busy machine, with the consumer's start-up on a bus of
thousands of topics: its first metadata answer alone). A :class:`ScanReader`
does it in a thread of its own, with its own event loop and consumer (no
group: it commits nothing). Python's interpreter lock still lets one thread
run at a time, but hands over every few milliseconds, so the router's loop
waits a few milliseconds for it instead of a whole step.

What the thread produces, a :class:`Step` per fetched batch of a partition, is
applied on the router's loop (:meth:`ScanReader` calls ``deliver`` there, in
the order read): the state a backfill delivers from is only ever touched
there.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

from exchange.bus import kafka
from exchange.bus.connection import Connection

#: a partition to read: anything with a ``tp`` (exchange.router.backfill_scan.Part)
Part = Any
#: what rendering a batch of records gives, handed to ``deliver`` as it is
Step = Any

log = logging.getLogger(__name__)

#: source records read (and rendered) per step, so a step reaches the router's loop soon
FETCH = 2000
STOP_S = 10.0  # longest wait for the thread's consumer to close
#: the interpreter's thread switch interval while a reader runs (the default is 5 ms): a
#: reader's thread holds the lock at most this long before the router's loop gets it back.
#: Measured (benchmarks/backfill.py, 100,000 keys, busy machine): others' live p99 during a
#: backfill 6.0x without one at 5 ms, 3.5x at 0.5 ms, the backfill's rate unchanged
SWITCH_INTERVAL_S = 0.0005


def scan_consumer(bus: Connection) -> Any:
    """The consumer a backfill scan reads its source with (in a thread or a worker process):
    no group, large fetches, and a short fetch wait (once caught up, a fetch must not hold
    a record long)."""
    return kafka.consumer(
        bus,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=50,
    )


class ScanReader:
    """Reads the parts it is given from their first record, in a thread, and hands each
    rendered step to ``deliver`` on the event loop that created it."""

    def __init__(
        self,
        bus: Connection,
        name: str,
        render: Callable[[Part, list[Any]], Step],
        deliver: Callable[[Part, Step], None],
    ) -> None:
        self.bus = bus
        self.name = name
        self._render = render
        self._deliver = deliver
        self._home = asyncio.get_running_loop()
        #: (parts now, parts to read again from their first record), oldest first
        self._commands: queue.SimpleQueue[tuple[list[Part], list[Part]]] = queue.SimpleQueue()
        self._halted = threading.Event()
        self._ended = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"backfill-{name}", daemon=True)

    def start(self, parts: list[Part]) -> None:
        """Start reading ``parts``, each from its first record."""
        self._commands.put((list(parts), list(parts)))
        # the thread renders without pause while the router's loop does I/O: each time the
        # loop's thread gives up the interpreter lock for a syscall, it waits the switch
        # interval (5 ms by default) to get it back, once per send or receive
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread.start()

    def assign(self, parts: list[Part], new: list[Part]) -> None:
        """Read ``parts`` from now on (soon): ``new`` ones from their first record."""
        self._commands.put((list(parts), list(new)))

    def halt(self) -> None:
        """Read no more; a step under way is still handed over (the caller ignores it)."""
        self._halted.set()

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    async def stop(self) -> None:
        """Halt and wait (bounded) until the thread closed its consumer; idempotent."""
        self._halted.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._ended.wait, STOP_S + 1)
            if not self._ended.is_set():
                log.warning("backfill reader %s did not stop: left behind", self.name)

    # --- in the thread ---------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # told to the router: it ends the backfill
            self._failed = exc
        finally:
            self._ended.set()

    async def _run(self) -> None:
        consumer = scan_consumer(self.bus)
        try:  # stopped however it ends, also when its start fails part way
            await consumer.start()
            await self._read(consumer)
        finally:
            closing = asyncio.ensure_future(consumer.stop())
            done, _ = await asyncio.wait([closing], timeout=STOP_S)  # a fetch may swallow
            if not done:  # its cancel: the consumer is left behind, said
                log.warning("backfill of %s: its source consumer did not close", self.name)

    async def _read(self, consumer: Any) -> None:
        parts: dict[Any, Part] = {}
        while not self._halted.is_set():
            while not self._commands.empty():
                now, new = self._commands.get()
                parts = {p.tp: p for p in now}
                consumer.assign(list(parts))
                if new:
                    await consumer.seek_to_beginning(*(p.tp for p in new))
            if not parts:
                await asyncio.sleep(0.05)
                continue
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=FETCH)
            except KafkaError as exc:  # read again at the next step
                log.warning("backfill of %s: source not read: %s", self.name, exc)
                await asyncio.sleep(1)
                continue
            for tp, records in batch.items():
                part = parts.get(tp)
                if part is not None and records and not self._halted.is_set():
                    step = self._render(part, records)
                    self._home.call_soon_threadsafe(self._deliver, part, step)

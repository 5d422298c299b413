"""The backfill worker: a process that reads and renders a backfill's source for the router.

A backfill reads a source partition from its first record and renders every
record through the consumer's view: as much CPU per record as routing it
live. In the router's own process that work shares the interpreter lock with
live routing (one core for both, however many the machine has), so a
backfill either went slowly or held up other consumers' records. A worker
does it in a process of its own, on another core: it compiles the same view
from the same inputs (:class:`Recipe`: the resource, the consumer's view, the
router's mask secret, the schemas; the rendered bytes are the very bytes the
router's compiled view gives), reads the partitions it is told to with a
consumer of its own (no group: it commits nothing), and sends each batch it
rendered back over a pipe.

Everything else stays in the router (:mod:`exchange.router.backfill`): which
keys are pending, the cut-over, delivery, acknowledgements, audit, progress,
and stopping at once on a revocation (a step that arrives after it is
ignored). The worker holds no state the router needs: killed, it is started
again and reads from the first record, as a router resuming a backfill does.

The messages over the pipe (pickled by :mod:`multiprocessing`):

- router to worker: ``("assign", [(token, topic, partition, cutover, anew)])``
  (read these partitions from now on; ``anew``: from their first record) and
  ``("halt",)``;
- worker to router: ``("step", token, step)`` (a
  :meth:`~exchange.router.backfill_render.Renderer.render`
  result for the partition known by ``token``) and ``("failed", message)``.

The worker ends when told to halt, or when the router's end of the pipe
closes (the router stopped or was killed): it never outlives its router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from exchange.bus.connection import Connection
from exchange.catalog.model import Resource
from exchange.router.backfill_reader import scan_consumer
from exchange.router.backfill_render import Renderer
from exchange.router.view import compile_view
from exchange.router.view_table import Decoder
from exchange.sharing.policy import View

log = logging.getLogger(__name__)

#: source records read (and rendered) per step: about 0.5 MB over the pipe
FETCH = 2000
STOP_S = 10.0  # longest wait for the worker's consumer to close
#: how much lower the worker's CPU priority is than the router's (``nice``): on a busy
#: machine live routing and the broker come first, the backfill takes what is left (with
#: free cores it changes nothing). Measured on 2 shared cores (benchmarks/backfill.py,
#: 100,000 keys, load 4-8): others' p99 during a backfill 1.1-1.8x without one at 5,
#: 1.8-2.8x at 0 and 2; the backfill's rate 0.3-0.4 of live at 5, 0.5-0.8 at 0
NICE = 5


@dataclass(frozen=True)
class Recipe:
    """What a worker needs to render a consumer's view exactly as the router does."""

    bus: Connection
    res: Resource
    view: View
    master_secret: bytes
    #: the current schema, parsed, and every registered version of it (id -> parsed)
    reader: Any
    writers: dict[int, Any]

    def renderer(self) -> Renderer:
        """The view compiled again here, as the router compiled it."""
        decoder = Decoder.from_schemas(self.res, self.reader, self.writers)
        view = compile_view(self.res, self.view, self.master_secret, decoder.scanner)
        return Renderer(self.res, decoder, view)


def serve(pipe: Any, recipe: Recipe) -> None:
    """The worker process's entry: read and render until told to halt or orphaned."""
    with contextlib.suppress(OSError):  # not allowed here: at the router's priority
        os.nice(NICE)
    try:
        asyncio.run(_Worker(pipe, recipe).run())
    except BaseException as exc:  # told to the router: it ends the backfill
        with contextlib.suppress(OSError):  # the router is gone
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


class _Worker:
    def __init__(self, pipe: Any, recipe: Recipe) -> None:
        self.pipe = pipe
        self.recipe = recipe
        self.renderer = recipe.renderer()
        #: the partitions read: (the router's token for it, its cut-over)
        self.parts: dict[TopicPartition, tuple[int, int]] = {}
        #: partitions read up to their cut-over (or as far as there is to read)
        self.scanned: set[TopicPartition] = set()
        self.halted = False

    async def run(self) -> None:
        consumer = scan_consumer(self.recipe.bus)
        try:  # stopped however it ends, also when its start fails part way
            await consumer.start()
            await self._read(consumer)
        finally:
            closing = asyncio.ensure_future(consumer.stop())
            await asyncio.wait([closing], timeout=STOP_S)

    async def _commands(self, consumer: Any) -> None:
        """Apply what the router said since the last step (EOF: the router is gone)."""
        while not self.halted and self.pipe.poll():
            try:
                command = self.pipe.recv()
            except (EOFError, OSError):
                self.halted = True
                return
            if command[0] == "halt":
                self.halted = True
                return
            anew = []
            self.parts = {}
            for token, topic, partition, cutover, fresh in command[1]:
                tp = TopicPartition(topic, partition)
                self.parts[tp] = (token, cutover)
                if fresh:
                    anew.append(tp)
            self.scanned = {tp for tp in self.scanned if tp in self.parts} - set(anew)
            consumer.assign(list(self.parts))
            if anew:
                await consumer.seek_to_beginning(*anew)

    def _reading(self, consumer: Any) -> list[TopicPartition]:
        """Let through the partitions read past their cut-over and the first one that is
        not: a partition's backfill goes out once it is read up to its cut-over, so read
        one at a time, the router delivers the first while the worker reads the next."""
        first = next((tp for tp in self.parts if tp not in self.scanned), None)
        reading = [tp for tp in self.parts if tp in self.scanned or tp == first]
        paused = consumer.paused()
        if paused != set(self.parts) - set(reading):  # changed: pausing drops what was
            consumer.pause(*(tp for tp in self.parts if tp not in reading))  # fetched
            consumer.resume(*(tp for tp in reading if tp in paused))
        return [tp for tp in reading if tp not in self.scanned]

    async def _read(self, consumer: Any) -> None:
        while True:
            await self._commands(consumer)
            if self.halted:
                return
            if not self.parts:
                await asyncio.sleep(0.05)
                continue
            scanning = self._reading(consumer)
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=FETCH)
            except KafkaError as exc:  # read again at the next step
                log.warning("backfill worker: source not read: %s", exc)
                await asyncio.sleep(1)
                continue
            for tp in scanning:  # read to its end, short of its cut-over (the records
                if not batch.get(tp) and await _at_end(consumer, tp):  # before it were
                    self.scanned.add(tp)  # compacted away, say): the next one is read
            for tp, records in batch.items():
                known = self.parts.get(tp)
                if known is not None and records:
                    token, cutover = known
                    if records[-1].offset + 1 >= cutover:
                        self.scanned.add(tp)
                    self.pipe.send(("step", token, self.renderer.render(cutover, records)))


async def _at_end(consumer: Any, tp: TopicPartition) -> bool:
    """True if the consumer has fetched ``tp`` and read all it had then."""
    end = consumer.highwater(tp)
    return end is not None and int(await consumer.position(tp)) >= end

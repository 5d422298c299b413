"""The router's end of a backfill worker: starts it, tells it what to read, takes its steps.

A :class:`WorkerReader` has the surface of the thread reader
(:class:`~exchange.router.backfill_reader.ScanReader`: ``start``, ``assign``,
``halt``, ``failed``, ``stop``) and runs the reading and rendering in a
:mod:`exchange.router.backfill_worker` process instead, so a backfill uses a
core of its own and never holds the router's interpreter lock. Each step it
sends is handed to ``deliver`` on the router's event loop, in the order read,
as long as the partition it was read for is still the one assigned (each
part assigned gets a token: a step of a part dropped, or read again from its
first record, is ignored) and the reader was not halted.

Workers are forked from a :mod:`multiprocessing` fork server that has
imported the worker's modules already (:func:`warm_up`, when the router
starts): a worker starts in milliseconds, from a process with no threads and
no open connections of the router's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing import forkserver
from typing import Any

from exchange.router import backfill_worker
from exchange.router.backfill_worker import Recipe

log = logging.getLogger(__name__)

#: a partition to read: anything with ``tp`` and ``cutover`` (backfill_scan.Part)
Part = Any
STOP_S = backfill_worker.STOP_S + 2  # longest wait for a worker to end once told to halt
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["exchange.router.backfill_worker"])
_tokens = itertools.count(1)


def warm_up() -> None:
    """Start the fork server (blocking: a fresh interpreter importing the worker's modules,
    about a second); a router calls it in a thread when it starts, so its first backfill
    does not wait for it."""
    forkserver.ensure_running()


class WorkerReader:
    """Reads the parts it is given in a worker process; hands each step to ``deliver`` on
    the event loop that created it."""

    def __init__(self, recipe: Recipe, name: str, deliver: Callable[[Part, Any], None]) -> None:
        self.recipe = recipe
        self.name = name
        self._deliver = deliver
        self._home = asyncio.get_running_loop()
        self._current: dict[int, Part] = {}  # token -> part, as last assigned
        self._halted = False
        self._failed: BaseException | None = None
        self._pipe, child = _CONTEXT.Pipe(duplex=True)
        self._process = _CONTEXT.Process(
            target=backfill_worker.serve,
            args=(child, recipe),
            name=f"backfill-{name}",
            daemon=True,
        )
        self._child = child
        self._receiver = threading.Thread(
            target=self._receive, name=f"backfill-{name}-pipe", daemon=True
        )

    def start(self, parts: list[Part]) -> None:
        """Start the worker, reading ``parts`` each from its first record."""
        self._process.start()
        self._child.close()  # the worker's end: the pipe ends when the worker does
        self._receiver.start()
        self.assign(parts, parts)

    def assign(self, parts: list[Part], new: list[Part]) -> None:
        """Read ``parts`` from now on (soon): ``new`` ones from their first record."""
        fresh = {id(p) for p in new}
        tokens = {id(p): t for t, p in self._current.items()}
        current: dict[int, Part] = {}
        for part in parts:
            token = tokens.get(id(part)) if id(part) not in fresh else None
            current[token or next(_tokens)] = part
        self._current = current
        self._send(
            (
                "assign",
                [
                    (t, p.tp.topic, p.tp.partition, p.cutover, id(p) in fresh)
                    for t, p in current.items()
                ],
            )
        )

    def halt(self) -> None:
        """Read no more: a step that arrives after this is ignored; the worker is told."""
        if not self._halted:
            self._halted = True
            self._send(("halt",))

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    async def stop(self) -> None:
        """Halt and wait (bounded) until the worker ended; killed past that. Idempotent."""
        self.halt()
        process = self._process
        if process.pid is None:  # never started
            return
        await asyncio.to_thread(process.join, STOP_S)
        if process.exitcode is None:
            log.warning("backfill worker %s did not stop: killed", self.name)
            process.kill()
            await asyncio.to_thread(process.join, 5)
        # the receiving thread ends at the pipe's end of file (the worker gone): the pipe is
        # closed only after it, as closing it under a thread reading it breaks that read
        # (a TypeError from the closed handle, seen in a revocation round of the bench)
        if self._receiver.is_alive():
            await asyncio.to_thread(self._receiver.join, STOP_S)
        if self._receiver.is_alive():
            log.warning("backfill worker %s: its pipe is still read; left open", self.name)
            return
        self._pipe.close()

    def _send(self, command: tuple[Any, ...]) -> None:
        if self._process.pid is None:
            return
        try:
            self._pipe.send(command)
        except OSError as exc:  # the worker is gone: said by the receiver
            log.debug("backfill worker %s not told %s: %s", self.name, command[0], exc)

    # --- in the receiving thread ----------------------------------------------------------

    def _receive(self) -> None:
        while True:
            try:
                message = self._pipe.recv()
            except (EOFError, OSError):
                if not self._halted:
                    self._process.join(2)  # its exit code, once it is reaped
                    code = self._process.exitcode
                    self._fail(RuntimeError(f"the backfill worker ended (exit code {code})"))
                return
            if message[0] == "failed":
                self._fail(RuntimeError(f"the backfill worker failed: {message[1]}"))
                return
            try:
                self._home.call_soon_threadsafe(self._step, message[1], message[2])
            except RuntimeError:  # the router's loop is closed
                return

    def _fail(self, exc: BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the router's loop is closed
            self._home.call_soon_threadsafe(setattr, self, "_failed", exc)

    def _step(self, token: int, step: Any) -> None:
        part = self._current.get(token)
        if part is not None and not self._halted:
            self._deliver(part, step)

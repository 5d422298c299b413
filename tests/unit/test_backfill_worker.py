"""The backfill worker renders exactly as the router does, a worker that fails says so, and a
large backfill's partitions are read in two workers.

The worker process compiles the consumer's view again from a :class:`Recipe` (sent to
it pickled): its bytes must be the router's bytes, masks and row filter included.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiokafka import TopicPartition

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.dev import sample
from exchange.router import backfill_process, backfill_scan
from exchange.router.backfill_process import WorkerReader
from exchange.router.backfill_render import Renderer
from exchange.router.backfill_scan import BackfillScan, Part
from exchange.router.backfill_worker import Recipe
from exchange.router.view import compile_view
from exchange.router.view_table import Decoder
from exchange.sharing.policy import View

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BMC = "birth_medical_certificate"
SECRET = b"a test mask secret, 32 bytes ok!"
VIEW = View(
    consumer="police",
    resource=BMC,
    provider="health",
    fields=("certificate_no", "mother_name", "region_code"),
    masks={"mother_name": "surname"},
    row_filter='region_code.startsWith("3301")',
    grant_id="GR-1",
)


@dataclass
class Rec:
    """A source record as a Kafka consumer gives it: offset, key, value."""

    offset: int
    key: bytes | None
    value: bytes | None


def _recipe(view: View = VIEW) -> tuple[Recipe, Renderer]:
    res = load_catalog(SCHEMAS).resources[BMC]
    parsed = avro.parse(res.schema_)
    decoder = Decoder.from_schemas(res, parsed, {res.schema_id: parsed})
    router = Renderer(res, decoder, compile_view(res, view, SECRET, decoder.scanner))
    recipe = Recipe(Connection("127.0.0.1:9"), res, view, SECRET, parsed, {res.schema_id: parsed})
    return recipe, router


def test_a_worker_renders_the_routers_bytes() -> None:
    recipe, router = _recipe()
    res = recipe.res
    parsed = avro.parse(res.schema_)
    rows = sample.generate(res.schema_, 300, seed=16)
    for i, row in enumerate(rows[::3]):
        row["region_code"] = "330106"  # a third pass the filter at least
        rows[3 * i] = row
    records = [
        Rec(i, None, wire.frame(res.schema_id, wire.encode(parsed, row)))
        for i, row in enumerate(rows)
    ]
    records.append(Rec(300, b"K1", None))  # a tombstone: its key is dropped
    worker = pickle.loads(pickle.dumps(recipe)).renderer()  # as the fork server gets it
    got = worker.render(250, records)
    assert got == router.render(250, records)
    kept, next_offset = got
    assert next_offset == 301
    assert [offset for _, offset, _, _ in kept[250:]] == [-1] * 51  # from the cut-over on
    rendered = [out for _, offset, out, _ in kept if offset >= 0]
    assert None in rendered  # the row filter dropped some
    passed = [out for out in rendered if out is not None]
    assert len(passed) >= 80
    clear = {row["mother_name"] for row in rows}
    assert not any(name.encode() in out for name in clear for out in passed)  # masked


def test_a_worker_that_fails_is_reported_to_the_router() -> None:
    bad = replace(VIEW, fields=("certificate_no", "no_such_field"))
    recipe = replace(_recipe()[0], view=bad)

    async def run() -> BaseException | None:
        reader = WorkerReader(recipe, "test", lambda part, step: None)
        reader.start([Part(TopicPartition("gov.src.health.bmc", 0), cutover=10)])
        try:
            for _ in range(300):  # the fork server starts first: a second or two
                if reader.failed is not None:
                    break
                await asyncio.sleep(0.05)
            return reader.failed
        finally:
            await reader.stop()

    failed = asyncio.run(run())
    assert failed is not None
    assert "no_such_field" in str(failed)


class _SlowPipe:
    """The router's end of the pipe, read slowly (a large step arriving in pieces): notes
    whether the reading thread was still at it when the pipe was closed."""

    def __init__(self, pipe: Any, reader: WorkerReader) -> None:
        self._pipe = pipe
        self._reader = reader
        self.closed_while_read: bool | None = None

    def recv(self) -> Any:
        time.sleep(0.3)
        return self._pipe.recv()

    def close(self) -> None:
        self.closed_while_read = self._reader._receiver.is_alive()
        self._pipe.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


def test_stopping_a_worker_ends_its_pipe_reader_before_closing_the_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipe is closed only once the thread reading it has ended: closed under it, a
    read in progress broke with a TypeError in that thread (seen stopping backfills in the
    bench's revocation rounds)."""
    broken: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: broken.append(args.exc_value))

    async def run() -> _SlowPipe:
        reader = WorkerReader(_recipe()[0], "test", lambda part, step: None)
        # a worker that sends one step and ends, read by a thread that takes its time
        reader._process = backfill_process._CONTEXT.Process(
            target=reader._child.send, args=(("step", 0, None),), daemon=True
        )
        slow = _SlowPipe(reader._pipe, reader)
        reader._pipe = slow
        reader.start([])
        await asyncio.sleep(0.1)
        await reader.stop()
        assert not reader._receiver.is_alive()
        return slow

    slow = asyncio.run(run())
    assert slow.closed_while_read is False
    assert broken == []


class _FakeReader:
    """Stands in for a worker process: records what the scan told it."""

    made: ClassVar[list[_FakeReader]] = []

    def __init__(self, recipe: Recipe, name: str, deliver: object) -> None:
        self.parts: list[int] = []
        self.fresh: list[int] = []
        self.failed: BaseException | None = None
        self.stopped = False
        _FakeReader.made.append(self)

    def start(self, parts: list[Part]) -> None:
        self.assign(parts, parts)

    def assign(self, parts: list[Part], new: list[Part]) -> None:
        self.parts = [p.tp.partition for p in parts]
        self.fresh = [p.tp.partition for p in new]

    def halt(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


def test_a_large_scan_reads_its_partitions_in_two_workers_each_partition_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe, router = _recipe()
    monkeypatch.setattr(backfill_scan, "WorkerReader", _FakeReader)
    _FakeReader.made = []
    scan = BackfillScan(recipe.bus, recipe.res, router.decoder, router.view, recipe)

    def part(n: int) -> Part:
        return Part(TopicPartition("gov.src.health.bmc", n), cutover=5_000)

    async def run() -> None:
        for n in (2, 0, 1):
            await scan.add(part(n))
        await scan.begin()
        first, second = _FakeReader.made
        assert (first.parts, second.parts) == ([0, 2], [1])  # read at once: 0 and 1
        await scan.add(part(3))  # to the worker with fewer partitions
        assert (second.parts, second.fresh) == ([1, 3], [3])
        await scan.add(part(0))  # read again from its first record, by the same worker
        assert (first.parts, first.fresh) == ([0, 2], [0])
        scan.drop(TopicPartition("gov.src.health.bmc", 1))
        assert (second.parts, second.fresh) == ([3], [])
        assert scan.failed is None
        second.failed = RuntimeError("the backfill worker ended (exit code -9)")
        assert scan.failed is second.failed  # one worker failed: the scan did
        await scan.stop()
        assert first.stopped
        assert second.stopped

    asyncio.run(run())
    assert len(_FakeReader.made) == 2  # never more than WORKERS, whatever the partitions
    assert backfill_scan.WORKERS == 2

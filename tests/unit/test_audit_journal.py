"""Records sent through an :class:`AuditJournal`: durable on disk before their future is done,
shipped in order behind it (one batch in flight, a failed batch sent again before anything
after it), refused past the window, and what a gone process left sent at the next start.

The journal file is a real SQLite file and the batches are aiokafka's own (its C record
builder, read back with its record reader); the producer is a stand-in that keeps each batch
handed over and acknowledges or fails it when the test says. The gateway's integration tests
write through a real broker (``tests/integration/test_gateway_journal.py``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from exchange.audit.entry import Action, AuditEntry, Decision, Draft
from exchange.audit.journal import AccessLogBehind, AuditJournal, JournalFile, journals
from exchange.audit.verify import positioned, verify
from exchange.audit.writer import AuditWriter

TOPIC = "gov.audit"


class _Producer:
    """Keeps the batches handed over; acknowledges them at once, or when told (``hold``)."""

    def __init__(self, *, hold: bool = False, partitions: int = 1) -> None:
        self.hold = hold
        self.partitions = partitions
        self.handed: list[tuple[list[bytes], int, asyncio.Future[None]]] = []
        self.fail: Exception | None = None  # every batch fails while set
        self.sent: list[bytes] = []  # records sent one at a time (the schema registration)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16_384, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        assert topic == TOPIC
        values = [r.value for r in DefaultRecordBatch(bytes(batch._build()))]
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            acked.set_exception(self.fail)
        elif not self.hold:
            acked.set_result(None)
        self.handed.append((values, partition, acked))
        return acked

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append(value)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def acked_values(self) -> list[bytes]:
        return [
            v
            for values, _, acked in self.handed
            if acked.done() and acked.exception() is None
            for v in values
        ]


async def _until(predicate: Any, within: float = 2.0) -> None:
    for _ in range(int(within / 0.002)):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("not reached")


def _rows(path: Path) -> list[bytes]:
    with sqlite3.connect(path) as db:
        return [v for (v,) in db.execute("SELECT value FROM records ORDER BY id")]


async def test_a_record_is_on_disk_when_its_future_is_done_before_the_broker_has_it(
    tmp_path: Path,
) -> None:
    producer = _Producer(hold=True)
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    done = await journal.send(TOPIC, value=b"0", key=b"w")
    same_turn = await journal.send(TOPIC, value=b"1", key=b"w")
    assert done is same_turn, "the records of one turn share one transaction"
    await done
    # another connection sees the committed rows: they are in the file, not in a buffer
    assert _rows(journal.path) == [b"0", b"1"]
    await _until(lambda: len(producer.handed) == 1)
    assert journal.unshipped == 2
    producer.handed[0][2].set_result(None)
    await _until(lambda: journal.unshipped == 0)
    await _until(lambda: _rows(journal.path) == [])  # deleted once acknowledged
    await journal.close()
    assert os.listdir(tmp_path) == [], "an empty journal and its lock are removed"


async def test_records_journaled_while_a_batch_is_in_flight_travel_in_order_in_the_next(
    tmp_path: Path,
) -> None:
    producer = _Producer(hold=True)
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    await (await journal.send(TOPIC, value=b"0", key=b"w"))
    await _until(lambda: len(producer.handed) == 1)
    for i in range(1, 6):
        await (await journal.send(TOPIC, value=str(i).encode(), key=b"w"))
    await asyncio.sleep(0.02)
    assert len(producer.handed) == 1, "nothing is handed over while a batch is in flight"
    producer.handed[0][2].set_result(None)
    await _until(lambda: len(producer.handed) == 2)
    assert [values for values, _, _ in producer.handed] == [[b"0"], [b"1", b"2", b"3", b"4", b"5"]]
    producer.handed[1][2].set_result(None)
    await journal.close()


async def test_shipped_records_are_deleted_by_the_next_append_or_after_a_quiet_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exchange.audit.journal.FORGET_S", 0.2)
    producer = _Producer()
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    await (await journal.send(TOPIC, value=b"a", key=b"w"))
    await _until(lambda: journal.unshipped == 0)
    assert _rows(journal.path) == [b"a"], "no deletion of its own right after the broker's ack"
    await (await journal.send(TOPIC, value=b"b", key=b"w"))
    assert _rows(journal.path) == [b"b"], "the append's transaction deleted what was shipped"
    await _until(lambda: journal.unshipped == 0)
    await _until(lambda: _rows(journal.path) == [], within=1.0)  # nothing appended: on its own
    await journal.close()


async def test_a_failed_batch_is_sent_again_before_anything_after_it(tmp_path: Path) -> None:
    producer = _Producer()
    producer.fail = RuntimeError("broker gone")
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    await (await journal.send(TOPIC, value=b"a", key=b"w"))  # durable: the answer may leave
    await _until(lambda: len(producer.handed) >= 2)  # failed, and sent again
    await (await journal.send(TOPIC, value=b"b", key=b"w"))
    producer.fail = None
    await _until(lambda: journal.unshipped == 0)
    assert producer.acked_values() == [b"a", b"b"]
    assert all(values[0] == b"a" for values, _, _ in producer.handed[:2])
    await journal.close()


async def test_past_the_window_sends_are_refused_and_accepted_again_once_shipped(
    tmp_path: Path,
) -> None:
    producer = _Producer()
    producer.fail = RuntimeError("broker gone")
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0, window_s=0.2)
    await journal.start()
    await (await journal.send(TOPIC, value=b"a", key=b"w"))
    await asyncio.sleep(0.3)
    why = journal.behind()
    assert why is not None
    assert "has not acknowledged" in why
    assert "0.2 s" in why
    with pytest.raises(AccessLogBehind, match=r"gov\.audit has not acknowledged"):
        await journal.send(TOPIC, value=b"b", key=b"w")
    producer.fail = None
    await _until(lambda: journal.behind() is None, within=5)
    await (await journal.send(TOPIC, value=b"c", key=b"w"))
    await _until(lambda: journal.unshipped == 0)
    assert producer.acked_values() == [b"a", b"c"]
    await journal.close()


async def test_too_many_waiting_records_are_refused(tmp_path: Path) -> None:
    producer = _Producer(hold=True)
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0, max_unshipped=3)
    await journal.start()
    for v in (b"1", b"2", b"3"):
        await (await journal.send(TOPIC, value=v, key=b"w"))
    with pytest.raises(AccessLogBehind, match=r"3 access log entries wait for gov\.audit"):
        await journal.send(TOPIC, value=b"4", key=b"w")
    producer.hold = False
    producer.handed[0][2].set_result(None)
    await journal.close()


async def test_a_close_that_cannot_ship_keeps_the_file_and_the_next_start_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exchange.audit.journal.CLOSE_WAIT_S", 0.3)
    down = _Producer()
    down.fail = RuntimeError("broker gone")
    first = AuditJournal(down, TOPIC, tmp_path, linger_ms=0)
    await first.start()
    for v in (b"1", b"2"):
        await (await first.send(TOPIC, value=v, key=b"gateway-a"))
    await first.close()
    assert list(journals(tmp_path)) == [first.path]
    assert _rows(first.path) == [b"1", b"2"]

    up = _Producer()
    second = AuditJournal(up, TOPIC, tmp_path, linger_ms=0)
    await second.start()
    assert up.acked_values() == [b"1", b"2"]
    assert second.recovered == 2
    assert list(journals(tmp_path)) == [second.path]
    await second.close()


async def test_a_journal_held_by_a_running_process_is_left_to_it(tmp_path: Path) -> None:
    running = AuditJournal(_Producer(hold=True), TOPIC, tmp_path, linger_ms=0)
    await running.start()
    await (await running.send(TOPIC, value=b"mine", key=b"w"))
    other = _Producer()
    starting = AuditJournal(other, TOPIC, tmp_path, linger_ms=0)
    await starting.start()
    assert other.handed == []
    assert starting.recovered == 0
    assert _rows(running.path) == [b"mine"]
    await starting.close()


async def test_a_killed_processs_journal_is_sent_in_order_and_removed(tmp_path: Path) -> None:
    # what a process killed after its commits and before shipping leaves: the file, no lock
    left = JournalFile(tmp_path / "4242-deadbeef.journal")
    left.append([(i, b"gateway-h-4242", str(i).encode()) for i in range(1, 1001)])
    left.close()
    producer = _Producer()
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    assert producer.acked_values() == [str(i).encode() for i in range(1, 1001)]
    assert len(producer.handed) > 1, "a thousand records do not fit in one 16 KB batch"
    assert journal.recovered == 1000
    assert [p.name for p in journals(tmp_path)] == [journal.path.name]
    assert not (tmp_path / "4242-deadbeef.lock").exists()
    await journal.close()


async def test_a_key_goes_to_the_partition_kafkas_default_partitioner_gives_it(
    tmp_path: Path,
) -> None:
    from aiokafka.partitioner import DefaultPartitioner

    producer = _Producer(partitions=6)
    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    keys = (b"gateway-h-1-aa", b"gateway-h-2-bb", b"gateway-h-3-cc")
    for key in keys:
        await (await journal.send(TOPIC, value=b"x", key=key))
        await _until(lambda: journal.unshipped == 0)
    expected = [DefaultPartitioner()(k, list(range(6)), list(range(6))) for k in keys]
    assert [partition for _, partition, _ in producer.handed] == expected
    await journal.close()


async def test_a_chain_written_through_the_journal_by_concurrent_callers_verifies(
    tmp_path: Path,
) -> None:
    producer = _Producer()

    class _Registry:
        async def register(self, producer: Any, schema: Any) -> int:
            return 1

    journal = AuditJournal(producer, TOPIC, tmp_path, linger_ms=2)
    await journal.start()
    writer = AuditWriter(
        producer,
        _Registry(),  # type: ignore[arg-type]
        role="gateway",
        instance="h-1",
        signer=None,
        sender=journal,
    )

    async def caller(i: int) -> None:
        draft = Draft(Action.RECORD_QUERIED, actor="hrss", decision=Decision.ANSWERED, resource="population_basic", details={"n": str(i)})  # fmt: skip
        await (await writer.send([draft])).acknowledged()

    await asyncio.gather(*(caller(i) for i in range(200)))
    await writer.stop()
    await journal.close()
    entries = [AuditEntry.decode(v) for v in producer.acked_values()]
    assert [e.seq for e in entries] == list(range(200))
    assert sorted(int(e.details["n"]) for e in entries) == list(range(200))
    assert not verify(positioned(entries)).problems
    assert len(producer.handed) < 200 / 4, "the entries travelled in batches"
    assert producer.sent == []  # none went one at a time


async def test_a_journal_that_cannot_be_written_fails_the_send_and_refuses_the_next(
    tmp_path: Path,
) -> None:
    journal = AuditJournal(_Producer(), TOPIC, tmp_path, linger_ms=0)
    await journal.start()
    assert journal._file is not None
    journal._file._db.execute("DROP TABLE records")  # the file no longer takes records
    with pytest.raises(sqlite3.OperationalError):
        await (await journal.send(TOPIC, value=b"a", key=b"w"))
    with pytest.raises(AccessLogBehind, match="cannot be written"):
        await journal.send(TOPIC, value=b"b", key=b"w")
    await journal.close()

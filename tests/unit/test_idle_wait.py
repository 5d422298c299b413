"""A consumer's fetch wait: on the embedded broker short while records flow, long once idle,
short again; on Kafka batches while records flow, the first byte answered once idle."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from exchange.bus import idle_wait
from exchange.bus.idle_wait import IDLE_WAIT_MS, IdleFetchWait


def _consumer(wait_ms: int = 5) -> Any:
    return SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=wait_ms, _fetch_min_bytes=1))


def test_the_wait_lengthens_after_an_idle_spell_and_shortens_at_the_first_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(idle_wait.time, "monotonic", lambda: clock[0])
    consumer = _consumer()
    wait = IdleFetchWait(consumer, 5, enabled=True)
    wait.observed(0)
    clock[0] += idle_wait.IDLE_AFTER_S - 0.1
    wait.observed(0)
    assert consumer._fetcher._fetch_max_wait_ms == 5  # not idle yet
    clock[0] += 0.2
    wait.observed(0)
    assert wait.idle
    assert consumer._fetcher._fetch_max_wait_ms == IDLE_WAIT_MS
    wait.observed(3)
    assert not wait.idle
    assert consumer._fetcher._fetch_max_wait_ms == 5
    clock[0] += idle_wait.IDLE_AFTER_S - 0.1  # the idle spell counts from the last record
    wait.observed(0)
    assert consumer._fetcher._fetch_max_wait_ms == 5


def test_on_kafka_the_wait_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(idle_wait.time, "monotonic", lambda: clock[0])
    consumer = _consumer()
    wait = IdleFetchWait(consumer, 5, enabled=False)
    clock[0] += 60
    wait.observed(0)
    assert consumer._fetcher._fetch_max_wait_ms == 5


def test_a_routing_consumer_on_kafka_batches_while_records_flow_and_not_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(idle_wait.time, "monotonic", lambda: clock[0])
    consumer = _consumer(wait_ms=500)  # as built on Kafka: the long wait, the first byte
    fetcher = consumer._fetcher
    wait = idle_wait.source_fetch_wait(consumer, embedded=False, embedded_ms=5)
    wait.observed(0)
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (500, 1)
    wait.observed(4)  # records flow: wait for a batch, at most BATCH_WAIT_MS
    assert fetcher._fetch_max_wait_ms == idle_wait.BATCH_WAIT_MS
    assert fetcher._fetch_min_bytes == idle_wait.BATCH_MIN_BYTES
    clock[0] += idle_wait.IDLE_AFTER_S
    wait.observed(0)  # idle again: the next record is answered at once
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (500, 1)


def test_a_routing_consumer_on_the_embedded_broker_keeps_its_short_wait() -> None:
    consumer = _consumer()
    wait = idle_wait.source_fetch_wait(consumer, embedded=True, embedded_ms=5)
    wait.observed(3)
    assert (consumer._fetcher._fetch_max_wait_ms, consumer._fetcher._fetch_min_bytes) == (5, 1)

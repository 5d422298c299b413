"""The embedded broker's fetch wait: short while records flow, long once idle, short again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from exchange.bus import idle_wait
from exchange.bus.idle_wait import IDLE_WAIT_MS, IdleFetchWait


def _consumer() -> Any:
    return SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=5))


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

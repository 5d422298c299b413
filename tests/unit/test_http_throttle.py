"""The failed-login throttle of the HTTP services: counts, windows, blocks, memory."""

from __future__ import annotations

import pytest

from exchange.http.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **kw: float) -> LoginThrottle:
    return LoginThrottle(
        max_failures=int(kw.get("n", 3)),
        window_s=kw.get("window", 10.0),
        block_s=kw.get("block", 30.0),
        max_clients=int(kw.get("clients", 100)),
        clock=clock,
    )


def test_the_nth_failure_within_the_window_blocks_once_for_block_s() -> None:
    clock = Clock()
    t = throttle(clock)
    assert [t.failed("10.0.0.1") for _ in range(2)] == [False, False]
    assert t.retry_after("10.0.0.1") is None
    assert t.failed("10.0.0.1") is True  # the third blocks
    assert t.retry_after("10.0.0.1") == 30
    assert t.retry_after("10.0.0.2") is None  # per client
    clock.now += 29.5
    assert t.retry_after("10.0.0.1") == 1  # rounded up: never "0 s"
    assert t.failed("10.0.0.1") is False  # counted again, but already blocked
    clock.now += 0.5
    assert t.retry_after("10.0.0.1") is None


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    t = throttle(clock)
    t.failed("c")
    t.failed("c")
    clock.now += 10.0  # both leave the window
    assert t.failed("c") is False
    assert t.failed("c") is False
    assert t.failed("c") is True


def test_memory_is_bounded_by_forgetting_the_least_recent_client() -> None:
    clock = Clock()
    t = throttle(clock, n=1, clients=2)
    assert t.failed("a") is True
    t.failed("b")
    t.failed("c")  # "a" is forgotten
    assert t.retry_after("a") is None
    assert t.retry_after("c") == 30


@pytest.mark.parametrize(("n", "window", "block"), [(0, 1.0, 1.0), (1, 0.0, 1.0), (1, 1.0, -1)])
def test_nonsense_settings_are_refused(n: int, window: float, block: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        LoginThrottle(max_failures=n, window_s=window, block_s=block)

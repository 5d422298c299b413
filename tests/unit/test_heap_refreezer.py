"""exchange.heap: the heap frozen at once, and the Refreezer, which freezes the long-lived state
made after start-up once it settles."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from exchange.heap import Refreezer, freeze


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """A long-lived object in a reference cycle, as a compiled view and its closures are."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the test process's heap is shared),
    and no collection runs but the ones the test makes (or the Refreezer does)."""
    gc.unfreeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def long_lived(count: int) -> list[Node]:
    """``count`` objects promoted to the oldest collected generation."""
    made = [Node() for _ in range(count)]
    gc.collect()  # survivors of a full collection are in generation 2
    return made


def test_nothing_due_before_a_change(thawed: None) -> None:
    clock = Clock()
    r = Refreezer(clock=clock)
    clock.now += 3600
    assert not r.due
    assert r.poll() is None
    assert gc.get_freeze_count() == 0


def test_a_pass_waits_until_the_changes_settle(thawed: None) -> None:
    clock = Clock()
    r = Refreezer(grown=1000, settle_s=2, max_wait_s=30, clock=clock)
    kept = long_lived(5000)
    assert not r.pending
    r.changed()
    assert r.pending
    clock.now += 1.5
    r.changed()  # a second recompile soon after: the wait starts again
    clock.now += 1.5
    assert not r.due
    assert r.poll() is None
    assert gc.get_freeze_count() == 0
    clock.now += 0.5
    assert r.due
    done = r.poll()
    assert done is not None
    print(done)
    assert done.unfrozen >= 5000
    assert done.frozen >= 5000
    assert gc.get_freeze_count() == done.frozen
    assert len(gc.get_objects(generation=2)) < 1000  # what full collections walk now
    assert r.passes == 1
    assert not r.due
    assert r.poll() is None
    assert "heap frozen again" in str(done)
    assert f"{done.unfrozen:,}" in str(done)
    del kept


def test_changes_without_a_pause_still_get_a_pass(thawed: None) -> None:
    clock = Clock()
    r = Refreezer(grown=1000, settle_s=2, max_wait_s=30, clock=clock)
    kept = long_lived(2000)
    for _ in range(29):
        r.changed()
        clock.now += 1
        assert not r.due
    r.changed()
    clock.now += 1  # 30 s after the first change, 1 s after the last
    assert r.due
    assert r.poll() is not None
    del kept


def test_a_small_change_costs_no_collection(thawed: None) -> None:
    clock = Clock()
    r = Refreezer(grown=len(gc.get_objects(generation=2)) + 50_000, clock=clock)
    collections = gc.get_stats()[2]["collections"]
    r.changed()
    clock.now += 10
    assert r.due
    assert r.poll() is None
    assert gc.get_stats()[2]["collections"] == collections
    assert gc.get_freeze_count() == 0
    assert r.passes == 0
    assert not r.due


def test_frozen_cycles_that_became_garbage_are_freed_by_the_next_pass(thawed: None) -> None:
    clock = Clock()
    r = Refreezer(grown=1000, settle_s=0, clock=clock)
    old = long_lived(3000)
    r.changed()
    first = r.poll()
    assert first is not None
    del old  # the views a recompile replaced: cycles, frozen, now garbage
    new = long_lived(3000)
    r.changed()
    second = r.poll()
    assert second is not None
    assert second.frozen < first.frozen + 3000  # the old cycles were collected, not kept
    del new


def test_a_frozen_heap_is_left_out_of_later_collections(thawed: None) -> None:
    kept = [[i] for i in range(1000)]  # tracked containers, alive across the freeze
    freeze()
    assert gc.get_freeze_count() >= len(kept)

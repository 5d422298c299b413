"""exchange.dev.gc_pauses: the bench's own full collections during a latency run."""

from __future__ import annotations

import gc

from exchange.dev.gc_pauses import GcPauses


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_full_collections_in_the_block_are_counted_and_timed() -> None:
    gc.disable()  # only the collections below: making the junk may start one of its own
    try:
        with GcPauses() as pauses:
            junk = [Cycle() for _ in range(20_000)]
            del junk
            gc.collect()  # a full collection
            gc.collect(0)  # a young one: not counted
    finally:
        gc.enable()
    assert pauses.count == 1
    assert 0 < pauses.longest <= pauses.total
    said = str(pauses)
    assert said.startswith("the bench's own full collections: 1, ")
    assert "the longest" in said


def test_nothing_is_counted_outside_the_block() -> None:
    with GcPauses() as pauses:
        pass
    gc.collect()
    assert pauses.count == 0
    assert pauses.total == 0
    assert pauses._observe not in gc.callbacks

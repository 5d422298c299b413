"""The garbage collector's pauses in this process over a window: what a measuring client adds.

The bench measures latency with clients in its own process (a publisher at 2,000
records/s, a consumer reading the deliveries back): a pause of that process delays the
records it sends and the ones it reads, and shows up as latency of the bus. Each latency
line of the bench says what its own collections cost during the run, so that a p99 the
measuring process made is seen as such, and each latency run starts with the process's heap
frozen (:func:`exchange.heap.freeze`), as the router's is.
"""

from __future__ import annotations

import gc
import time
from typing import Any


class GcPauses:
    """``with GcPauses() as p: ...`` then ``p.count``, ``p.longest``, ``p.total`` (seconds)
    of the collections of generation ``generation`` and older in the block."""

    def __init__(self, generation: int = 2) -> None:
        self.generation = generation
        self.count = 0
        self.longest = 0.0
        self.total = 0.0
        self._started = 0.0

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation", 0) < self.generation:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.count += 1
        self.total += took
        self.longest = max(self.longest, took)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._observe)

    def __str__(self) -> str:
        return (
            f"the bench's own full collections: {self.count}, {self.total * 1000:,.0f} ms in "
            f"all, the longest {self.longest * 1000:,.0f} ms"
        )

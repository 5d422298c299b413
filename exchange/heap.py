"""The long-lived heap of a long-running process, left out of garbage collection.

A service builds most of its objects at start (catalog, grant book, compiled
views, schemas: about 100,000 objects in a router or the gateway), then makes
short-lived ones per record or request. Python's full collections walk every
object there is: in the gateway under load a pause of up to 125 ms every few
seconds (its p99), and in a router's recompile of 3,600 views a collection or
two walking everything the process holds. :func:`freeze` after start-up moves
the objects alive then to a generation no collection scans (what the Python
documentation advises for long-lived start-up state); objects made later are
collected as usual. The cost: a reference cycle among frozen objects that
becomes garbage later is not freed until the next :class:`Refreezer` pass
(objects without cycles, most of them, are freed by reference counting as ever).

State that arrives after start-up is long-lived too: a router that follows 3,600
grants written while it runs holds about 110,000 more objects (their views, the
grant book), and each full collection under load walked them: 12 collections took
0.99 s of five drains of 60,000 records (74-83 ms each, 3-5 ms once frozen), and the
router routed 0.81 as fast as before the grants (measured 3 December, bench row 3).
:class:`Refreezer` freezes again once such a change has settled.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


def freeze() -> None:
    """Collect what is garbage now, then leave every object alive out of later collections."""
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Refrozen:
    """What one :meth:`Refreezer.poll` did."""

    #: long-lived objects outside the frozen set before it (what full collections walked)
    unfrozen: int
    #: objects frozen after it
    frozen: int
    #: the pause it took (one full collection of everything)
    seconds: float

    def __str__(self) -> str:
        return (
            f"heap frozen again: {self.unfrozen:,} long-lived objects were walked by every "
            f"full collection; {self.frozen:,} frozen now ({self.seconds * 1000:.0f} ms)"
        )


#: long-lived objects outside the frozen set worth a pass (a router routing under load
#: keeps a few hundred to a few thousand there; 3,600 grants' views about 110,000)
GROWN = 20_000
#: a pass waits for the long-lived state to stop changing this long ...
SETTLE_S = 2.0
#: ... but no longer than this after its first change (grants written without a pause)
MAX_WAIT_S = 30.0


class Refreezer:
    """Freezes the heap again some time after the long-lived state changed, if it grew.

    The owner calls :meth:`changed` when its long-lived state changed (a router after a
    recompile of its views) and :meth:`poll` from its loop (cheap until a pass is due).
    A pass is due ``settle_s`` after the last change (at most ``max_wait_s`` after the
    first); it counts the objects of the oldest collected generation (0.2 ms for a
    thousand, 11 ms for 110,000) and, if there are ``grown`` or more, unfreezes, collects
    (which also frees frozen cycles that became garbage since) and freezes again: one
    pause of a full collection (176 ms with 217,000 objects, measured) instead of one
    every second or so while the records flow.
    """

    def __init__(
        self,
        *,
        grown: int = GROWN,
        settle_s: float = SETTLE_S,
        max_wait_s: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grown = grown
        self.settle_s = settle_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._first: float | None = None  # the first change not passed over yet
        self._last = 0.0
        #: passes made (each a full collection)
        self.passes = 0

    def changed(self) -> None:
        """The long-lived state changed: a pass is due once it settles."""
        now = self.clock()
        if self._first is None:
            self._first = now
        self._last = now

    @property
    def pending(self) -> bool:
        """A change not passed over yet (its pass due later, or found not worth one)."""
        return self._first is not None

    @property
    def due(self) -> bool:
        if self._first is None:
            return False
        now = self.clock()
        return now - self._last >= self.settle_s or now - self._first >= self.max_wait_s

    def poll(self) -> Refrozen | None:
        """Make the pass if it is due and the heap grew; what it did (None: nothing)."""
        if not self.due:
            return None
        self._first = None
        unfrozen = len(gc.get_objects(generation=2))
        if unfrozen < self.grown:
            return None
        started = time.perf_counter()
        gc.unfreeze()
        freeze()
        self.passes += 1
        return Refrozen(unfrozen, gc.get_freeze_count(), time.perf_counter() - started)

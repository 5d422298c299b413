"""Source topics of the catalog that the router's consumer has not seen yet.

The router subscribes to every source topic by pattern (``gov.src.*``), so that a
record written to a topic outside the catalog is dead-lettered, not ignored. A
consumer subscribed by pattern learns of new topics only from the cluster's
metadata, and every ask fetches the metadata of *every* topic: with thousands
of delivery topics, decoding the answer holds the event loop for a third of a
second (3,600 grants, measured). So the consumer asks seldom on its own
(:data:`~exchange.router.loop.SOURCE_METADATA_MAX_AGE_MS`), and this watch asks
for it when the catalog names a source topic the subscription lacks: at once,
then backing off (the catalog is written before its topics are made) until the
subscription has every one.
"""

from __future__ import annotations

import time
from typing import Any

from exchange.bus import kafka

FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 60.0


class SourceWatch:
    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._sources: frozenset[str] = frozenset()
        self._next = float("inf")  # monotonic time of the next look
        self._wait = FIRST_WAIT_S

    def catalog(self, sources: frozenset[str]) -> None:
        """The catalog in force names these source topics (after each recompile)."""
        if sources != self._sources:
            self._sources = sources
            self._next, self._wait = time.monotonic(), FIRST_WAIT_S

    @property
    def missing(self) -> set[str]:
        """Source topics of the catalog the consumer's subscription does not hold yet."""
        return set(self._sources - self._consumer.subscription())

    def poll(self) -> None:
        """Between two fetches: ask for the metadata if a source topic is missing and it
        is time to look again. Cheap when nothing is missing."""
        now = time.monotonic()
        if now < self._next:
            return
        if not self.missing:
            self._next = float("inf")
            return
        kafka.refresh_metadata(self._consumer)
        self._next = now + self._wait
        self._wait = min(self._wait * 2, LONGEST_WAIT_S)

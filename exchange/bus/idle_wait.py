"""A consumer's fetch wait: short while records flow, longer when idle.

The embedded broker (Tansu) answers a fetch only when its wait ends, so the wait is
the latency a record sees: the router asks with a 5 ms wait, and an idle router
therefore asked 200 times a second, for ever, each answer empty. Apache Kafka answers a
waiting fetch as soon as a record arrives, so there the router's source consumer waits
long anyway (:meth:`exchange.bus.connection.Connection.fetch_wait_ms`) and this does
nothing for it. A control-topic follower keeps a short wait on both engines (its lineage
check's ListOffsets queues behind a waiting fetch on Kafka) and uses this on both.

:class:`IdleFetchWait` keeps the short wait while records arrive and, once none has
for :data:`IDLE_AFTER_S`, lengthens it to :data:`IDLE_WAIT_MS`: a record arriving after
an idle spell waits at most that much longer, and the first one back restores the
short wait. aiokafka reads the wait from its fetcher for every request it builds.
"""

from __future__ import annotations

import time
from typing import Any

#: no record for this long: the consumer is idle
IDLE_AFTER_S = 2.0
#: an idle consumer's fetch wait on the embedded broker (10 fetches a second, not 200)
IDLE_WAIT_MS = 100


class IdleFetchWait:
    """Sets a consumer's fetch wait from whether its recent fetches brought records."""

    def __init__(self, consumer: Any, busy_ms: int, *, enabled: bool) -> None:
        #: aiokafka's fetcher, whose ``_fetch_max_wait_ms`` each request is built with
        self._fetcher = getattr(consumer, "_fetcher", None) if enabled else None
        self.busy_ms = busy_ms
        self.idle = False
        self._last_record = time.monotonic()

    def observed(self, records: int) -> None:
        """Called after each fetch (``getmany``) with how many records it brought."""
        fetcher = self._fetcher
        if fetcher is None:
            return
        now = time.monotonic()
        if records:
            self._last_record = now
            if self.idle:
                self.idle = False
                fetcher._fetch_max_wait_ms = self.busy_ms
        elif not self.idle and now - self._last_record >= IDLE_AFTER_S:
            self.idle = True
            fetcher._fetch_max_wait_ms = max(self.busy_ms, IDLE_WAIT_MS)

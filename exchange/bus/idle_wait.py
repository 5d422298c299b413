"""A consumer's fetch wait: short while records flow, longer when idle.

The embedded broker (Tansu) answers a fetch only when its wait ends, so the wait is
the latency a record sees: the router asks with a 5 ms wait, and an idle router
therefore asked 200 times a second, for ever, each answer empty. A control-topic
follower keeps a short wait on both engines (its lineage check's ListOffsets queues
behind a waiting fetch on Kafka) and uses this on both.

:class:`IdleFetchWait` keeps the short wait while records arrive and, once none has
for :data:`IDLE_AFTER_S`, lengthens it to :data:`IDLE_WAIT_MS`: a record arriving after
an idle spell waits at most that much longer, and the first one back restores the
short wait. aiokafka reads the wait (and the least amount of data a fetch waits for) from
its fetcher for every request it builds.

Apache Kafka answers a waiting fetch as soon as ``fetch.min.bytes`` have arrived (one
byte by default), so there the router's source consumer waits long when idle
(:meth:`exchange.bus.connection.Connection.fetch_wait_ms`) and a record after an idle
spell is answered at once. While records flow, though, one byte means a fetch per
handful of records: a router routing 2,000 records a second fetched continuously, and
building a fetch over its few hundred source partitions was a third of its CPU (py-spy,
3 December). With ``busy_min_bytes`` (:data:`BATCH_MIN_BYTES`), the consumer asks, while
records flow, for that much data or the short wait (:data:`BATCH_WAIT_MS`), whichever
comes first: at most one fetch per short wait at a light load, full fetches at a heavy
one; once idle it is back to one byte and the long wait, so the first record after a
quiet spell is not held.
"""

from __future__ import annotations

import time
from typing import Any

#: no record for this long: the consumer is idle
IDLE_AFTER_S = 2.0
#: an idle consumer's fetch wait on the embedded broker (10 fetches a second, not 200)
IDLE_WAIT_MS = 100
#: on Kafka while records flow: a fetch waits for this much data or BATCH_WAIT_MS
BATCH_MIN_BYTES = 1024 * 1024
#: on Kafka while records flow: the longest a record waits at the broker for others
BATCH_WAIT_MS = 5


class IdleFetchWait:
    """Sets a consumer's fetch wait from whether its recent fetches brought records.

    ``busy_ms`` is the wait while records flow and ``idle_ms`` the wait once idle;
    ``busy_min_bytes`` (more than 1: the Kafka batching above) is the data a fetch waits
    for while records flow (1 once idle). ``idle``: the state the consumer was built in
    (its ``fetch_max_wait_ms`` and ``fetch_min_bytes`` are the idle ones).
    """

    def __init__(
        self,
        consumer: Any,
        busy_ms: int,
        *,
        enabled: bool,
        idle_ms: int = IDLE_WAIT_MS,
        busy_min_bytes: int = 1,
        idle: bool = False,
    ) -> None:
        #: aiokafka's fetcher, whose ``_fetch_max_wait_ms`` each request is built with
        self._fetcher = getattr(consumer, "_fetcher", None) if enabled else None
        self.busy_ms = busy_ms
        self.idle_ms = max(busy_ms, idle_ms)
        self.busy_min_bytes = busy_min_bytes
        self.idle = idle
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
                fetcher._fetch_min_bytes = self.busy_min_bytes
        elif not self.idle and now - self._last_record >= IDLE_AFTER_S:
            self.idle = True
            fetcher._fetch_max_wait_ms = self.idle_ms
            fetcher._fetch_min_bytes = 1


def source_fetch_wait(consumer: Any, *, embedded: bool, embedded_ms: int) -> IdleFetchWait:
    """The fetch wait of a consumer that routes records (built with the connection's
    :meth:`~exchange.bus.connection.Connection.fetch_wait_ms` and one byte): on the
    embedded broker the short wait while records flow and :data:`IDLE_WAIT_MS` once idle;
    on Kafka, batches while records flow (:data:`BATCH_MIN_BYTES` or
    :data:`BATCH_WAIT_MS`) and the connection's long wait, answered at the first byte,
    once idle."""
    if embedded:
        return IdleFetchWait(consumer, embedded_ms, enabled=True)
    fetcher = getattr(consumer, "_fetcher", None)
    idle_ms = fetcher._fetch_max_wait_ms if fetcher is not None else IDLE_WAIT_MS
    return IdleFetchWait(
        consumer,
        BATCH_WAIT_MS,
        enabled=True,
        idle_ms=idle_ms,
        busy_min_bytes=BATCH_MIN_BYTES,
        idle=True,
    )

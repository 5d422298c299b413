"""When each source topic was last written: the newest record timestamp of its partitions.

One consumer, no group: each partition is read from its last record batch
(the end offset minus one; on the embedded broker the end offset is the base
of the last batch plus one, so the seek lands on that batch's first record,
and the newest timestamp of what comes back is still the last one).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable

from aiokafka.errors import KafkaConnectionError

from exchange.bus import kafka
from exchange.bus.connection import Connection

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def from_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


async def last_publish_times(
    bus: Connection, names: Iterable[str], *, timeout_s: float = 15.0
) -> dict[str, dt.datetime | None]:
    """Topic -> timestamp of its newest record (None: no record, or no such topic)."""
    wanted = sorted(set(names))
    out: dict[str, dt.datetime | None] = dict.fromkeys(wanted)
    if not wanted:
        return out
    c = kafka.consumer(bus)
    try:  # stopped however it ends: a router stopping cancels this mid-start
        try:
            await c.start()
        except KafkaConnectionError as exc:
            raise kafka.unavailable(bus, exc) from exc
        existing = await kafka.existing_topics(c, wanted)  # never one auto-created
        tps = [
            tp
            for name in wanted
            if name in existing
            for tp in await kafka.topic_partitions(c, name)
        ]
        if not tps:
            return out
        c.assign(tps)
        ends = await c.end_offsets(tps)
        waiting = {tp for tp in tps if ends[tp] > 0}
        for tp in waiting:
            c.seek(tp, ends[tp] - 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while waiting and loop.time() < deadline:
            batch = await c.getmany(*waiting, timeout_ms=200)
            for tp, records in batch.items():
                newest = max(r.timestamp for r in records)
                seen = out[tp.topic]
                stamp = from_ms(newest)
                out[tp.topic] = stamp if seen is None or stamp > seen else seen
                waiting.discard(tp)
        return out
    finally:
        await c.stop()

"""Putting many records on a topic for a benchmark, as fast as a producer takes them.

Every record is handed to the producer at once, and the acknowledgements are waited
for :data:`WINDOW` records at a time, so a million records never hold a million
futures and a failure is raised within a window of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: records handed over between two waits for their acknowledgements
WINDOW = 20_000


async def send_all(
    producer: Any,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
) -> int:
    """Send every ``(key, value, headers)`` to ``topic``; returns how many, all acknowledged."""
    futures = []
    sent = 0
    for key, value, headers in records:
        futures.append(await producer.send(topic, key=key, value=value, headers=list(headers)))
        sent += 1
        if len(futures) >= WINDOW:
            for f in futures:
                await f
            futures = []
    for f in futures:
        await f
    return sent

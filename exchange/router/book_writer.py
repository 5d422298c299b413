"""The router's side of grant-book snapshots: write the book to ``gov.ctl.book`` when it changed.

Commands start from the newest snapshot instead of replaying all of
``gov.ctl.grants`` (:mod:`exchange.control.book_snapshot` says what a snapshot
holds and why a forged one cannot change what is delivered). Only routers
write them: they replay the grants topic authoritatively anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from exchange.bus import topics
from exchange.control import book_snapshot
from exchange.control.state import ControlState, load

FRESH_REPLAY_EVERY_S = 30.0  # after a catalog change: a full replay at most this often

log = logging.getLogger(__name__)


async def keep_written(state: ControlState, producer: AIOKafkaProducer, writer: str) -> None:
    """Write the grant book of a router's ``state`` whenever it changed (runs until cancelled).

    A book whose events were checked under two catalogs (the catalog changed
    while the router ran) is not what a fresh replay gives: then a full replay
    under the catalog in force is written instead, at most every
    :data:`FRESH_REPLAY_EVERY_S`.
    """
    await state.registry.register(producer, book_snapshot.BOOK_SNAPSHOT)
    written, last_fresh = 0, -FRESH_REPLAY_EVERY_S
    while True:
        offset = state.positions.get(topics.GRANTS, 0)
        if offset > written and state.snapshot is not None:
            source: ControlState | None = state
            if state.book_catalog != (state.snapshot.version, state.snapshot.digest):
                source = None
                if time.monotonic() - last_fresh >= FRESH_REPLAY_EVERY_S:
                    last_fresh = time.monotonic()
                    source = await load(state.bus, from_snapshot=False)
            if source is not None and source.snapshot is not None:
                at = source.positions.get(topics.GRANTS, 0)
                # the copy on the loop (consistent with ``at``), the encoding (a 2 MB
                # JSON document for 3,600 grants: 0.3-0.7 s) in a thread, off the loop
                value = await asyncio.to_thread(
                    book_snapshot.encode,
                    book_snapshot.capture(source.book),
                    at,
                    source.snapshot.version,
                    source.snapshot.digest,
                    writer,
                    source.origin.get(topics.GRANTS, ("", 0)),
                )
                try:
                    await producer.send_and_wait(topics.BOOK, key=b"book", value=value)
                    written = at
                except KafkaError as exc:
                    log.warning("grant book snapshot not written: %s", exc)
        await asyncio.sleep(book_snapshot.EVERY_S)

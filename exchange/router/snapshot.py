"""A consumer's view of the current state of a resource (文件下载 file download), read once.

The same path as a backfill (:mod:`exchange.router.backfill_scan`), to the end
of the source instead of a cut-over: each key's latest record, filtered,
projected and masked by the consumer's compiled view
(:func:`~exchange.router.view.compile_view`, with the routers' mask secret,
so hashed values equal the ones delivered), deleted keys (tombstones) left
out. :mod:`exchange.router.snapshot_file` writes it to a file.

It reads the source topic, so it runs with the routers' rights (their Kafka
user and mask secret): the platform makes the file for the department, as
the router delivers its records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.control.state import ControlState
from exchange.errors import PermissionDenied, UnknownResource
from exchange.router.backfill_scan import BackfillScan, Part
from exchange.router.view import CompiledView, compile_view
from exchange.router.view_table import Decoder
from exchange.sharing.policy import compute_view

EVERYTHING = 2**62  # a cut-over no offset reaches: the whole partition is the state


@dataclass
class CurrentState:
    """The rows of one consumer's view, in source order per partition, and where it read to."""

    view: CompiledView
    rows: list[dict[str, Any]]
    read_to: dict[int, int]  # source partition -> next offset (the state is as of these)
    at: dt.datetime


def compiled_view(
    state: ControlState, consumer: str, resource: str, master_secret: bytes
) -> tuple[CompiledView, Decoder]:
    """``consumer``'s compiled view of ``resource`` now; refused as a delivery would be."""
    catalog = state.catalog
    res = catalog.resources.get(resource)
    if res is None:
        raise UnknownResource(f"no resource {resource!r} in the catalog", resource=resource)
    view = compute_view(catalog, state.book, consumer, resource, at=dt.datetime.now(dt.UTC))
    if view.denied or not view.receiving:
        why = view.denied or view.not_receiving()
        raise PermissionDenied(
            f"{consumer} receives nothing of {resource}: {why}",
            resource=resource,
            department=consumer,
        )
    decoder = Decoder(res, state)
    return compile_view(res, view, master_secret, decoder.scanner), decoder


async def current_state(
    bus: Connection, state: ControlState, consumer: str, resource: str, master_secret: bytes
) -> CurrentState:
    """Read the source of ``resource`` to its end: ``consumer``'s view of each key's latest."""
    res = state.catalog.resources.get(resource)
    if res is not None and res.schema_id not in state.registry:
        await state.registry.refresh()
    view, decoder = compiled_view(state, consumer, resource, master_secret)
    res = decoder.res
    scan = BackfillScan(bus, res, decoder, view)
    c = kafka.consumer(bus, enable_auto_commit=False)
    try:  # stopped however it ends, also cancelled or failed mid-start
        await c.start()
        tps = await kafka.topic_partitions(c, topics.source(res.provider, res.id))
        parts = {tp: Part(tp, EVERYTHING) for tp in tps}
        if tps:
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            records = await kafka.drain(c, tps, timeout_s=300)
            by_partition: dict[Any, list[Any]] = {}
            for rec in records:
                by_partition.setdefault(TopicPartition(rec.topic, rec.partition), []).append(rec)
            for tp, recs in by_partition.items():
                scan.scan(parts[tp], recs)
    finally:
        await c.stop()
    rows = []
    for part in parts.values():
        for _offset, out, _rid in part.pending.values():
            if out is not None:
                rows.append(wire.decode(view.parsed, wire.unframe(out)[1]))
    return CurrentState(
        view, rows, {tp.partition: p.read_to for tp, p in parts.items()}, dt.datetime.now(dt.UTC)
    )

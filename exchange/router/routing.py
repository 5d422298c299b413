"""Routing one source partition's records of a batch: scan once, one view per consumer.

::

    records ─▶ scan once ─▶ for each compiled view: filter, project, mask
            ─▶ append to the record batch of gov.dlv.<consumer>.<resource> (see
               exchange.bus.outbox); a record that cannot be read is dead-lettered

The per-record loop (:meth:`PartitionRouter._route_records`) is the router's
hot path: everything it needs is set up once per partition and held in local
variables. The audit entries are built from the per-partition counts, never
in the per-record loop. Order per key is kept because a key always maps to
the same source partition, so to the same delivery partition.

Public surface: :class:`PartitionRouter` (``route``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.key_hash import KEY_HASHES, KeyHasher
from exchange.avro import wire
from exchange.avro.scan import LazyRecord
from exchange.bus import topics
from exchange.bus.envelope import DELETED, LEFT_VIEW, RECORD_ID, record_ids
from exchange.bus.limits import MAX_VALUE_BYTES  # publishers refuse larger values up front
from exchange.bus.outbox import Outbox
from exchange.catalog.model import Resource
from exchange.errors import DecodeError
from exchange.metrics import RouterMetrics
from exchange.router import corrections
from exchange.router.dead_letters import SOURCE_OFFSET, DeadLetters
from exchange.router.deletions import deletion_draft, reaches, tombstone_headers
from exchange.router.membership import Membership
from exchange.router.settle import PendingDrafts
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder, ViewTable
from exchange.sharing.dispute_records import CORRECTS_HEADER

#: per view, for the per-record loop: where to add, whether to pass the source bytes,
#: the slice renderer, the key's hashing (None: the source key as it is), where to note
#: the key and offset of a record delivered, the keys the view holds (None: no row filter)
_Plan = tuple[Any, bool, Any, Any, Any, set[bytes] | None]
#: per view: the (key, source offset) of every record delivered, deleted, left the view
_Keys = list[tuple[bytes, int]]


class _Tally:
    """What one source partition's records did, per view: counts and keys for the audit."""

    __slots__ = ("counts", "deleted", "delivered", "left", "noted")

    def __init__(self, views: int) -> None:
        self.counts = [[0, 0] for _ in range(views)]  # delivered, filtered
        self.delivered: list[_Keys] = [[] for _ in range(views)]
        self.deleted: list[_Keys] = [[] for _ in range(views)]
        self.left: list[_Keys] = [[] for _ in range(views)]
        #: corrections (疑义校核) delivered: view index, dispute id, record id
        self.noted: list[tuple[int, bytes, bytes]] = []


class PartitionRouter:
    """Routes the records of one source partition at a time, with the views in force."""

    def __init__(
        self,
        producer: Any,
        table: ViewTable,
        dead_letters: DeadLetters,
        drafts: PendingDrafts,
        metrics: RouterMetrics,
        key_hasher: KeyHasher | None = None,
    ) -> None:
        self.producer = producer
        self.table = table
        self.dead_letters = dead_letters
        self.drafts = drafts
        self.metrics = metrics
        #: hashes the keys of delivered records into the delivery entries (audit trace)
        self.key_hasher = key_hasher or KeyHasher(None)
        #: the keys each row-filtered view holds (who gets a deletion, who left a view)
        self.membership = Membership()
        self._partition_counts: dict[str, int] = {}

    async def route(
        self, topic: str, records: list[Any], now: dt.datetime, outbox: Outbox
    ) -> list[Any]:
        """Route the records of one source partition into ``outbox``; dead-letter futures."""
        parsed = topics.parse_source(topic)
        res_id = parsed[1] if parsed else topic
        snapshot = self.table.state.snapshot
        res = snapshot.catalog.resources.get(res_id) if snapshot else None
        if res is None or parsed is None or res.provider != parsed[0]:
            why = (
                f"topic {topic} is not the source topic of a catalog resource"
                if res is None or parsed is None
                else f"{res_id!r} is provided by {res.provider!r}, not {parsed[0]!r}"
            )
            return [await self.dead_letters.send(res_id, rec, why) for rec in records]
        views = [v for v in self.table.views.get(res.id, []) if v.active(now)]
        # every record here comes from one source partition, so each view's delivery
        # partition is the same for all of them
        source_partition = records[0].partition
        targets = [
            (v, outbox.lane(v.topic, await self.delivery_partition(v.topic, source_partition)))
            for v in views
        ]
        tally = _Tally(len(targets))
        futures = await self._route_records(res, records, targets, tally)
        self._account(res, records, targets, tally)
        for draft in corrections.delivered_drafts(res, targets, tally.noted):
            self.drafts.add(draft)
        return futures

    async def _route_records(
        self,
        res: Resource,
        records: list[Any],
        targets: list[tuple[CompiledView, Any]],
        tally: _Tally,
    ) -> list[Any]:
        """The per-record loop: each record to every view in ``targets``; dead-letter futures.

        ``tally.counts[i]`` gets the records delivered and filtered out for ``targets[i]``,
        and ``tally.delivered[i]`` (``left[i]``) the key and source offset of each record
        delivered to it (deleted for it because it left its row filter); ``tally.noted``
        each delivery of a correction (view index, dispute id, record id). A tombstone goes
        to :meth:`_delete`.
        """
        correction_of = corrections.correction_of
        futures: list[Any] = []
        where = f"{records[0].partition}:".encode()
        decoder = self.table.decoders[res.id]
        scanner = decoder.scanner
        header = wire.frame(res.schema_id, b"")  # records of the current schema start so
        partition = records[0].partition
        plans: list[_Plan] = [
            (
                lane.add,
                view.passthrough,
                view.slice_renderer,
                view.key_hash,
                tally.delivered[i].append,
                self.membership.of(view, partition),
            )
            for i, (view, lane) in enumerate(targets)
        ]
        counts, left, noted = tally.counts, tally.left, tally.noted
        resource, key_field = res.id, res.key
        key_bytes = scanner.string_bytes(key_field) if scanner is not None else None
        record_id = record_ids(resource)
        for rec in records:
            value = rec.value
            if value is None:  # a tombstone: the provider deleted the record of this key
                if rec.key is None:
                    why = "a deletion (a record with no value) without a key"
                    futures.append(await self.dead_letters.send(resource, rec, why))
                else:
                    self._delete(resource, rec, where, targets, plans, tally)
                continue
            try:
                if (
                    scanner is not None
                    and value is not None
                    and value[:5] == header
                    and len(value) <= MAX_VALUE_BYTES
                ):
                    # the common case: the current schema, scanned and sliced, never decoded
                    body = value[5:]
                    offsets = scanner.offsets(body)
                    record: Any = LazyRecord(scanner, body, offsets)
                    current = same_schema = True
                    # the key: a string key field's bytes as they are, else its text
                    key = (
                        key_bytes(body, offsets)
                        if key_bytes is not None
                        else str(record[key_field]).encode()
                    )
                else:
                    sid, body, record = decode_other(decoder, value)
                    offsets, current, same_schema = None, False, sid == res.schema_id
                    key = str(record[key_field]).encode()
            except DecodeError as exc:
                futures.append(await self.dead_letters.send(resource, rec, str(exc)))
                continue
            # nothing a provider's own producer wrote travels on unchecked: the record id
            # and the key are recomputed from the decoded record, never copied
            rid = record_id(body)
            headers = [(RECORD_ID, rid), (SOURCE_OFFSET, where + str(rec.offset).encode())]
            corrects = correction_of(rec.headers)
            if corrects is not None:  # a corrected record (疑义校核) says which dispute
                headers.append((CORRECTS_HEADER, corrects))
            for i, (add, passthrough, render, key_hash, delivered, members) in enumerate(plans):
                if passthrough and same_schema:
                    out = value  # the source bytes as they came
                elif current and render is not None and offsets is not None:
                    out = render(body, offsets, record)
                else:
                    out = targets[i][0].render(record)
                if out is None:
                    counts[i][1] += 1
                    if members and key in members:  # it held the key: now it left the view
                        members.discard(key)
                        gone = tombstone_headers(resource, key, where, rec.offset, LEFT_VIEW)
                        add(key if key_hash is None else key_hash(key), None, gone)
                        left[i].append((key, rec.offset))
                    continue
                add(key if key_hash is None else key_hash(key), out, headers)
                delivered((key, rec.offset))
                counts[i][0] += 1
                if members is not None:
                    members.add(key)
                if corrects is not None:
                    noted.append((i, corrects, rid))
        return futures

    @staticmethod
    def _delete(
        resource: str,
        rec: Any,
        where: bytes,
        targets: list[tuple[CompiledView, Any]],
        plans: list[_Plan],
        tally: _Tally,
    ) -> None:
        """A source tombstone: a tombstone for each view that holds its key."""
        key: bytes = rec.key
        headers = tombstone_headers(resource, key, where, rec.offset, DELETED)
        for i, (add, _, _, key_hash, _, members) in enumerate(plans):
            if reaches(targets[i][0], members, key):
                add(key if key_hash is None else key_hash(key), None, headers)
                tally.deleted[i].append((key, rec.offset))

    def _account(
        self,
        res: Resource,
        records: list[Any],
        targets: list[tuple[CompiledView, Any]],
        tally: _Tally,
    ) -> None:
        """Metrics of the partition's records, and one delivery entry per view that had any
        (and one per view that had deletions, one per view some records left)."""
        counts, keys = tally.counts, tally.delivered
        delivered = {view.consumer: counts[i][0] for i, (view, _) in enumerate(targets)}
        filtered = {view.consumer: counts[i][1] for i, (view, _) in enumerate(targets)}
        self.metrics.records_in.labels(res.id).inc(len(records))
        for consumer, n in delivered.items():
            if n:
                self.metrics.delivered.labels(res.id, consumer).inc(n)
        for consumer, n in filtered.items():
            if n:
                self.metrics.filtered.labels(res.id, consumer).inc(n)
        digests: dict[bytes, str] = {}  # a record delivered to several views: hashed once
        for i, (view, _) in enumerate(targets):
            if delivered.get(view.consumer) or filtered.get(view.consumer):
                hashes = self.key_hasher.details(res.id, keys[i], digests)
                self.drafts.add(_delivery_draft(res, view, records, delivered, filtered, hashes))
            for action, gone in (
                (Action.RECORD_DELETED, tally.deleted[i]),
                (Action.RECORD_LEFT_VIEW, tally.left[i]),
            ):
                if gone:
                    hashes = self.key_hasher.details(res.id, gone, digests)
                    where = (records[0].topic, records[0].partition, _span(records))
                    self.drafts.add(deletion_draft(action, res, view, where, len(gone), hashes))
                    self.metrics.deletions.labels(res.id, view.consumer, action.value).inc(
                        len(gone)
                    )

    async def delivery_partition(self, topic: str, source_partition: int) -> int:
        """Delivery partition: the source partition modulo the topic's partition count.

        A key always maps to one source partition, so it always maps to one delivery
        partition and its order is kept; and no key is hashed again per record (the
        client's murmur2 partitioner is pure Python, ~20 us a call).
        """
        count = self._partition_counts.get(topic)
        if count is None:
            known = await self.producer.partitions_for(topic)  # waits for the metadata
            count = self._partition_counts[topic] = len(known)
        return source_partition % count


def decode_other(decoder: Decoder, value: bytes | None) -> tuple[int, memoryview, dict[str, Any]]:
    """Schema id, body and record of a value off the scanned fast path.

    Another registered version of the schema, a schema that is not scanned, or a
    malformed value (:class:`DecodeError` says what is wrong).
    """
    if value is not None and len(value) > MAX_VALUE_BYTES:
        raise DecodeError(f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
    sid, body = wire.unframe(value)
    return sid, body, decoder.decode(sid, body)


def _span(records: list[Any]) -> str:
    """``first-last``: the source offsets of a partition's records in a batch."""
    return f"{records[0].offset}-{records[-1].offset}"


def _delivery_draft(
    res: Resource,
    view: CompiledView,
    records: list[Any],
    delivered: dict[str, int],
    filtered: dict[str, int],
    key_hashes: str,
) -> Draft:
    """One RECORDS_DELIVERED entry: which fields went where under which grant, no values
    (the keys of the records delivered as keyed hashes: :mod:`exchange.audit.key_hash`)."""
    v = view.view
    details = detail_map(
        record_count=delivered.get(v.consumer, 0),
        filtered_count=filtered.get(v.consumer, 0),
        partition=records[0].partition,
        offsets=_span(records),
        source_topic=records[0].topic,
        delivery_topic=view.topic,
        fields=v.fields,
        masks=v.masks or None,
        row_filter=v.row_filter,
        view_schema_id=view.schema_id,
        mask_key=view.key_fingerprint,
    )
    details[KEY_HASHES] = key_hashes
    return Draft(
        Action.RECORDS_DELIVERED,
        actor="router",
        decision=Decision.DELIVERED,
        resource=res.id,
        consumer=v.consumer,
        provider=res.provider,
        grant_id=v.grant_id,
        purpose=v.purpose,
        details=details,
    )

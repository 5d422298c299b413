"""Backfill progress and resync requests on the bus: ``gov.ctl.backfill``, ``gov.ctl.resync``.

Both topics are compacted. ``gov.ctl.backfill`` holds, per consumer, resource
and source partition, the last :class:`Progress` a router wrote: which view
(its shape) the consumer was last given the current state of, the cut-over
offset (records before it come from the backfill, from it on from live
routing), how far delivery got, and the state. It is what makes a backfill
survive a router crash: the next owner of the partition resumes after
``through`` instead of starting again, and a router that starts sees which
views were already given their 全量 (full data) and which are new or wider.
Only routers write it; departments read it (``exchange subscriptions``).

``gov.ctl.resync`` holds a department's last request for its full view again
(``exchange resync``); routers read it.

:class:`BackfillBook` follows both topics in one consumer and keeps the latest
record of each key.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from exchange.avro.control_records import ControlCodec
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.errors import DecodeError
from exchange.lifecycle import AsyncService
from exchange.sharing.policy import View

log = logging.getLogger(__name__)


def _string(name: str, doc: str) -> dict[str, Any]:
    return {"name": name, "type": "string", "doc": doc}


def _long(name: str, doc: str) -> dict[str, Any]:
    return {"name": name, "type": "long", "doc": doc}


PROGRESS_V1: dict[str, Any] = {
    "type": "record",
    "name": "BackfillProgress",
    "namespace": "gov.exchange.control",
    "doc": "全量 Progress of a backfill of one consumer's view from one source partition.",
    "fields": [
        _string("consumer", "department receiving the view"),
        _string("resource", "resource"),
        {"name": "partition", "type": "int", "doc": "source partition"},
        _string("job", "backfill id (one per view given its current state)"),
        _string("shape", "fingerprint of the view backfilled (grant, fields, masks, filter)"),
        _string("fields", "fields of that view, comma-separated"),
        {"name": "grant_id", "type": ["null", "string"], "default": None, "doc": "grant"},
        {"name": "row_filter", "type": ["null", "string"], "default": None, "doc": "filter"},
        _string("trigger", "grant (a new view), widened, or resync"),
        _long("cutover", "first source offset delivered live with this view"),
        _long("through", "last source offset delivered by the backfill (-1: none yet)"),
        _long("delivered", "records delivered by the backfill so far"),
        _long("total", "records the backfill delivers in all (-1: not known yet)"),
        _string("state", "scanning, sending, done, stopped or ended (the view is gone)"),
        {"name": "reason", "type": ["null", "string"], "default": None, "doc": "why stopped"},
        _string("request", "id of the resync request it answers ('' if none)"),
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
        _string("instance", "router that wrote it"),
    ],
}
#: a backfill that changed the row filter also names the filter the consumer's copy was
#: built under before it: a router resuming it after a crash knows which keys it still holds
PROGRESS: dict[str, Any] = {
    **PROGRESS_V1,
    "fields": [
        *PROGRESS_V1["fields"],
        {
            "name": "narrowed_from",
            "type": ["null", "string"],
            "default": None,
            "doc": "row filter of the consumer's copy before this backfill changed it "
            "('true' when it had none); null when the filter did not change",
        },
    ],
}
RESYNC_REQUEST: dict[str, Any] = {
    "type": "record",
    "name": "ResyncRequest",
    "namespace": "gov.exchange.control",
    "doc": "A department's request for its full view of a resource again (exchange resync).",
    "fields": [
        _string("request", "unique id of the request"),
        _string("consumer", "department asking (it receives its own view only)"),
        _string("resource", "resource"),
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
        {"name": "reason", "type": ["null", "string"], "default": None, "doc": "why, if given"},
    ],
}
PROGRESS_CODEC = ControlCodec(PROGRESS, older=(PROGRESS_V1,))
RESYNC_CODEC = ControlCodec(RESYNC_REQUEST)
SCHEMAS = (PROGRESS, RESYNC_REQUEST)

RUNNING = ("scanning", "sending")


def shape_of(view: View) -> str:
    """A fingerprint of what a view delivers: grant, fields, masks, row filter."""
    facts = [view.grant_id, list(view.fields), sorted(view.masks.items()), view.row_filter]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def widens(view: View, before: Progress, shape: str | None = None) -> bool:
    """True if ``view`` delivers something the view last backfilled did not.

    A new grant, a field more, a mask taken off (a field now in clear is new data), or
    another row filter (looser or not: only rows passing the new one are sent). A view
    that only lost fields or gained masks needs no backfill. ``shape``: the view's
    :func:`shape_of`, if the caller has it already.
    """
    if view.grant_id != before.grant_id or view.row_filter != before.row_filter:
        return True
    fields, had = set(view.fields), set(before.fields.split(",")) if before.fields else set()
    if not fields <= had:
        return True
    return fields == had and before.shape != (shape if shape is not None else shape_of(view))


@dataclass(frozen=True)
class Progress:
    consumer: str
    resource: str
    partition: int
    job: str
    shape: str
    fields: str
    grant_id: str | None
    row_filter: str | None
    trigger: str
    cutover: int
    through: int
    delivered: int
    total: int
    state: str
    reason: str | None
    request: str
    at: dt.datetime
    instance: str
    narrowed_from: str | None = None

    @property
    def key(self) -> bytes:
        return f"{self.consumer}/{self.resource}/{self.partition}".encode()

    @property
    def running(self) -> bool:
        return self.state in RUNNING


@dataclass(frozen=True)
class ResyncRequest:
    request: str
    consumer: str
    resource: str
    at: dt.datetime
    reason: str | None = None

    @property
    def key(self) -> bytes:
        return f"{self.consumer}/{self.resource}".encode()


def encode_progress(p: Progress) -> bytes:
    return PROGRESS_CODEC.encode(asdict(p))


def encode_request(r: ResyncRequest) -> bytes:
    return RESYNC_CODEC.encode(asdict(r))


class BackfillBook(AsyncService):
    """The latest progress per (consumer, resource, partition) and resync request per view.

    ``follow=True`` keeps reading both topics in the background after the first
    catch-up; otherwise :meth:`start` reads them once, to their end.
    """

    def __init__(self, bus: Connection, *, follow: bool = True) -> None:
        self.bus = bus
        self.follow = follow
        self.progress: dict[tuple[str, str, int], Progress] = {}
        #: the same by view, (consumer, resource) -> partition -> progress: a view's parts
        #: without going through every view's (a router's book holds tens of thousands)
        self._by_view: dict[tuple[str, str], dict[int, Progress]] = {}
        self.requests: dict[tuple[str, str], ResyncRequest] = {}
        #: (consumer, resource) of every progress or request noted since the router last
        #: took them (:meth:`take_touched`): the views whose backfill it decides again
        self.touched: set[tuple[str, str]] = set()
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = kafka.consumer(self.bus, fetch_max_wait_ms=100)
        await self._consumer.start()
        tps = [TopicPartition(t, 0) for t in (topics.BACKFILL, topics.RESYNC)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        for rec in await kafka.drain(self._consumer, tps, timeout_s=30):
            self.apply(rec)
        if self.follow:
            self._task = asyncio.create_task(self._follow(), name="backfill-book")

    async def _follow(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except KafkaError as exc:  # logged, and read again at the next poll
                log.warning("backfill progress not read: %s", exc)
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for rec in records:
                    self.apply(rec)

    def apply(self, rec: Any) -> None:
        """Apply one record of either topic (a record that cannot be read is logged)."""
        if rec.value is None:
            return
        try:
            if rec.topic == topics.BACKFILL:
                p = Progress(**PROGRESS_CODEC.decode(rec.value))
                self.note(p)
            else:
                r = ResyncRequest(**RESYNC_CODEC.decode(rec.value))
                self.requests[(r.consumer, r.resource)] = r
                self.touched.add((r.consumer, r.resource))
        except (DecodeError, TypeError) as exc:
            log.warning("%s offset %d ignored: %s", rec.topic, rec.offset, exc)

    def note(self, p: Progress) -> None:
        """Keep ``p`` unless a later record of its partition is known already.

        A router notes what it writes at once, and reads it back later: an older
        record read back must not replace the newer one noted meanwhile.
        """
        key = (p.consumer, p.resource, p.partition)
        known = self.progress.get(key)
        if known is None or (p.at, p.delivered, p.through) >= (
            known.at,
            known.delivered,
            known.through,
        ):
            self.progress[key] = p
            self._by_view.setdefault((p.consumer, p.resource), {})[p.partition] = p
            self.touched.add((p.consumer, p.resource))

    def take_touched(self) -> set[tuple[str, str]]:
        """The views whose progress or resync request was noted since the last call."""
        touched, self.touched = self.touched, set()
        return touched

    def of_view(self, consumer: str, resource: str) -> list[Progress]:
        """Every partition's progress of one consumer's view, by partition."""
        parts = self._by_view.get((consumer, resource), {})
        return [parts[partition] for partition in sorted(parts)]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


def summary(parts: list[Progress]) -> str:
    """One line for a view's backfill across partitions: ``backfill 412,000 / 1,000,000``."""
    if not parts:
        return "no backfill"
    delivered = sum(p.delivered for p in parts)
    if any(p.state == "scanning" or p.total < 0 for p in parts if p.running):
        return f"backfill reading the current state ({delivered:,} delivered so far)"
    total = sum(max(p.total, 0) for p in parts)
    if any(p.running for p in parts):
        return f"backfill {delivered:,} / {total:,}"
    stopped = [p for p in parts if p.state == "stopped"]
    if stopped:
        return f"backfill stopped at {delivered:,} / {total:,}: {stopped[0].reason}"
    return f"backfill done: {delivered:,} records" + (
        f" (resync {parts[0].request})" if parts[0].request else ""
    )

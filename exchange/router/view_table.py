"""The view table: each resource's compiled views and source decoder, recompiled on change.

Policy changes (catalog load, approval, revocation, expiry) mark the table
stale; the router recompiles it between two batches, so they take effect
without a restart. After grant events only the resources they concern are
recompiled; after a catalog change or an expiry, every resource.

Public surface: :class:`ViewTable` (``views``, ``decoders``, ``known_topics``,
``producer``, ``stale``, ``changed``, ``expired``, ``recompile``) and
:class:`Decoder`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import fastavro

from exchange.avro import wire
from exchange.avro.scan import LazyRecord, Scanner, scanner_for
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.limits import MAX_VALUE_BYTES  # publishers refuse larger values up front
from exchange.catalog.model import Catalog, Resource
from exchange.control.state import ControlState
from exchange.errors import DecodeError, ExchangeError
from exchange.metrics import RouterMetrics
from exchange.router.view import CompiledView, compile_view
from exchange.sharing.grants import GrantBook
from exchange.sharing.policy import compute_view

# the router's one logger: its log lines read as they did before the split
log = logging.getLogger("exchange.router.loop")
DELIVERY_PREFIX = topics.delivery("", "")[:-1]  # "gov.dlv.": a delivery topic's name begins so
RETRY_TOPICS_S = 1.0  # wait before asking again for delivery topics the broker did not make


#: scanners by schema id (an id names one schema: it is made from the schema's text). A
#: full recompile (a catalog change) used to build every resource's scanner again: 213
#: resources took about 0.14 s of a 0.6 s recompile (profiled); and the views' shared
#: projections (exchange.router.view) are kept per scanner
_SCANNERS: dict[int, Scanner | None] = {}


def _scanner(res: Resource) -> Scanner | None:
    if res.schema_id not in _SCANNERS:
        if len(_SCANNERS) > 4096:
            _SCANNERS.clear()
        _SCANNERS[res.schema_id] = scanner_for(res.schema_)
    return _SCANNERS[res.schema_id]


class Decoder:
    """Decodes source bodies of one resource, any registered version, to the current schema."""

    def __init__(self, res: Resource, state: ControlState) -> None:
        self.res = res
        self.reader = state.registry.parsed(res.schema_id)
        #: records of the current schema are sliced, not decoded (see exchange.avro.scan)
        self.scanner = _scanner(res)
        self._header = wire.frame(res.schema_id, b"")  # a value of the current schema begins so
        self.writers: dict[int, Any] = {}
        for sid in state.catalog.schema_history.get(res.id, [res.schema_id]):
            if sid in state.registry:
                self.writers[sid] = state.registry.parsed(sid)

    @classmethod
    def from_schemas(cls, res: Resource, reader: Any, writers: dict[int, Any]) -> Decoder:
        """The decoder of ``res`` from its parsed schemas (a backfill worker's, in a process
        without the control state): ``reader`` the current one, ``writers`` by id."""
        decoder = cls.__new__(cls)
        decoder.res = res
        decoder.reader = reader
        decoder.scanner = _scanner(res)
        decoder._header = wire.frame(res.schema_id, b"")
        decoder.writers = dict(writers)
        return decoder

    def read(self, value: bytes) -> tuple[Any, bool, Any, list[int] | None]:
        """(body, whether it is of the current schema, record, scan offsets) of a framed
        source value; :class:`DecodeError` says what is wrong with a malformed one.

        A value of the current schema is checked whole and sliced (:mod:`exchange.avro.scan`):
        its fields are decoded only when read, and the offsets are given. One of another
        registered version (or of a schema that is not scanned) is decoded whole, to the
        current schema, and has no offsets. The router's own loop does the same inline.
        """
        scanner = self.scanner
        if scanner is not None and value[:5] == self._header and len(value) <= MAX_VALUE_BYTES:
            body = value[5:]
            offsets = scanner.offsets(body)
            return body, True, LazyRecord(scanner, body, offsets), offsets
        if len(value) > MAX_VALUE_BYTES:
            raise DecodeError(f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
        sid, other = wire.unframe(value)
        return other, sid == self.res.schema_id, self.decode(sid, other), None

    def decode(self, sid: int, body: memoryview) -> dict[str, Any]:
        writer = self.writers.get(sid)
        if writer is None:
            raise DecodeError(f"schema id {sid} is not a registered version of {self.res.id!r}")
        if sid == self.res.schema_id:
            return wire.decode(writer, body)
        buf = io.BytesIO(body)
        try:
            rec = fastavro.schemaless_reader(buf, writer, self.reader)
        except Exception as exc:
            raise DecodeError(f"Avro body does not match schema {sid}: {exc}") from exc
        if buf.tell() != len(body):
            raise DecodeError("Avro body has bytes left over: written with another schema")
        if not isinstance(rec, dict):
            raise DecodeError("Avro body is not a record")
        return rec


@dataclass(frozen=True)
class _Compiling:
    """What compiling one resource's views needs: the policy in force and the views of
    the previous compile that may be reused as they are."""

    catalog: Catalog
    book: GrantBook
    res: Resource
    decoder: Decoder
    now: dt.datetime
    reusable: list[CompiledView]


class ViewTable:
    """The compiled views and decoders of every catalog resource, for the grants in force.

    ``producer`` registers view schemas (set when the router starts);
    ``known_topics`` are the delivery and dead-letter topics made so far.
    """

    def __init__(
        self,
        state: ControlState,
        master_secret: bytes,
        metrics: RouterMetrics,
        *,
        bus: Connection,
        partitions: int | None,
    ) -> None:
        self.state = state
        self.master_secret = master_secret
        self.metrics = metrics
        self.bus = bus
        self.partitions = partitions
        self.producer: Any = None
        self.views: dict[str, list[CompiledView]] = {}
        self.decoders: dict[str, Decoder] = {}
        self.known_topics: set[str] = set()
        self._stale = True
        #: resources whose views must be recompiled (None: all of them)
        self._stale_resources: set[str] | None = None
        self._next_expiry: dt.datetime | None = None
        #: bumped by every recompile: who keeps something per view sees that they changed
        self.generation = 0
        #: the master secret the views in ``views`` were compiled with
        self._compiled_with: bytes | None = None
        #: delivery topics being made in the background (see :meth:`_hold_back`)
        self._making: set[asyncio.Future[None]] = set()

    @property
    def stale(self) -> bool:
        """True while a policy change waits for :meth:`recompile`."""
        return self._stale

    def changed(self, resource: str | None = None) -> None:
        """The grants of ``resource`` changed (None: the catalog, so every resource)."""
        self._stale = True
        if resource is None:
            self._stale_resources = None
        elif self._stale_resources is not None:
            self._stale_resources.add(resource)

    def forget(self) -> None:
        """Drop every view and decoder (the control state was reset): all recompiled next."""
        self.views, self.decoders = {}, {}
        self._next_expiry = None
        self.changed()

    def expired(self) -> bool:
        """True once a grant in force has reached its end: every view must be recompiled."""
        return self._next_expiry is not None and dt.datetime.now(dt.UTC) >= self._next_expiry

    async def recompile(
        self, *, everything: bool = False, reuse: bool = True
    ) -> dt.datetime | None:
        """Compile the views from the catalog and grants in force; the time they hold for.

        A view equal to one compiled before (same resource object, same secret) is kept
        as it is unless ``reuse`` is False. None: no catalog yet, so no view.
        """
        started = time.perf_counter()
        only = None if everything else self._stale_resources
        self._stale, self._stale_resources = False, set()
        if self.state.snapshot is None:
            self.views, self.decoders = {}, {}
            return None
        now = dt.datetime.now(dt.UTC)
        catalog: Catalog = self.state.catalog
        book = self.state.book
        if only is None:
            views: dict[str, list[CompiledView]] = {}
            decoders: dict[str, Decoder] = {}
        else:
            views, decoders = dict(self.views), dict(self.decoders)
        new_topics: set[str] = set()
        targets = book.all_targets(now)
        same_secret = reuse and self._compiled_with == self.master_secret
        for res in catalog.resources.values():
            if only is not None and res.id in decoders and res.id not in only:
                continue
            if res.schema_id not in self.state.registry:
                await self.state.registry.refresh()
            old = self.decoders.get(res.id)
            # a view equal to the one compiled last time, of the same resource object under
            # the same secret, is compiled already (an expiry recompiles every resource)
            reusable = self.views.get(res.id, []) if same_secret and old and old.res is res else []
            decoders[res.id] = Decoder(res, self.state)
            views[res.id] = await self._compile(
                _Compiling(catalog, book, res, decoders[res.id], now, reusable),
                targets.get(res.id, set()),
                new_topics,
            )
            dlq = topics.dead_letter(res.id)
            if dlq not in self.known_topics:
                new_topics.add(dlq)
        if new_topics and not self._hold_back(only, views, new_topics):
            await kafka.ensure_topics(self.bus, new_topics, partitions=self.partitions)
            self.known_topics |= new_topics
        self.views, self.decoders = views, decoders
        self._compiled_with = self.master_secret
        self.generation += 1
        self._next_expiry = book.next_expiry(now)
        self._reloaded(only, book, started, now)
        return now

    async def _compile(
        self, job: _Compiling, targets: set[str], new_topics: set[str]
    ) -> list[CompiledView]:
        """The views of ``job.res``, one per consumer in ``targets`` entitled to it; topics
        not made yet go to ``new_topics``."""
        res, catalog = job.res, job.catalog
        previous = {cv.consumer: cv for cv in job.reusable}
        compiled = []
        for consumer in sorted(targets):
            if consumer == res.provider or consumer not in catalog.departments:
                continue
            view = compute_view(catalog, job.book, consumer, res.id, at=job.now)
            if view.denied:
                continue
            cv = previous.get(consumer)
            if cv is None or cv.view != view:
                try:
                    cv = compile_view(res, view, self.master_secret, job.decoder.scanner)
                except ExchangeError as exc:
                    # fail closed: a view that cannot be compiled delivers nothing
                    log.error("view of %s for %s not compiled: %s", res.id, consumer, exc)
                    continue
            if cv.schema_id not in self.state.registry:
                await self.state.registry.register(self.producer, cv.schema)
            if cv.topic not in self.known_topics:
                new_topics.add(cv.topic)
            compiled.append(cv)
        return compiled

    @property
    def making_topics(self) -> bool:
        """Whether delivery topics are being made in the background, their views held back."""
        return bool(self._making)

    def _hold_back(
        self, only: set[str] | None, views: dict[str, list[CompiledView]], new_topics: set[str]
    ) -> bool:
        """Make the new delivery topics of a recompile of some resources in the background,
        and leave the views that need them out until they are made; False if it must wait.

        Making a topic on a broker of thousands took 0.5 s, and the recompile used to wait
        for it in the routing loop: every consumer's live records waited too (the policy
        reload of a new subscription, before its backfill). A view left out this way is
        compiled again and put in force once its topic exists (a few rounds later): its
        cut-over, and its backfill, begin then, so it loses nothing. The other views of the
        recompile (a revocation among them) are in force at once. A full recompile (the
        first one, a catalog change) or a new dead-letter topic still waits for its topics.
        """
        if only is None or not all(t.startswith(DELIVERY_PREFIX) for t in new_topics):
            return False
        held: set[str] = set()
        for res_id, compiled in views.items():
            kept = [cv for cv in compiled if cv.topic not in new_topics]
            if len(kept) != len(compiled):
                views[res_id] = kept
                held.add(res_id)
        making = asyncio.ensure_future(
            kafka.ensure_topics(self.bus, new_topics, partitions=self.partitions)
        )
        self._making.add(making)
        making.add_done_callback(lambda task: self._made(task, set(new_topics), held))
        log.info("making %d delivery topic(s) in the background: %s", len(held), sorted(held))
        return True

    def _made(self, task: asyncio.Future[None], made: set[str], held: set[str]) -> None:
        """Topics made in the background: recompile the resources whose views waited."""
        self._making.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.known_topics |= made
            for res_id in held:
                self.changed(res_id)
            return
        log.warning("delivery topics %s not made, trying again: %s", sorted(made), exc)
        loop = asyncio.get_running_loop()
        for res_id in held:  # not at once: a broker refusing them is asked once a second
            loop.call_later(RETRY_TOPICS_S, self.changed, res_id)

    def _reloaded(
        self, only: set[str] | None, book: GrantBook, started: float, now: dt.datetime
    ) -> None:
        """Metrics and the log line of a recompile that began at perf_counter ``started``."""
        n_views = sum(len(v) for v in self.views.values())
        n_active = sum(1 for g in book.grants.values() if g.active(now))
        took = time.perf_counter() - started
        self.metrics.policy_reloads.inc()
        self.metrics.views.set(n_views)
        self.metrics.active_grants.set(n_active)
        self.metrics.policy_reload_seconds.observe(took)
        log.info(
            "policy reloaded (%s): %d views of %d resources, %d active grants, in %.0f ms",
            "every resource" if only is None else ", ".join(sorted(only)) or "no resource",
            n_views,
            len(self.views),
            n_active,
            took * 1000,
        )

"""The registry's state: a control follower feeding the subjects, and the index it serves.

The service follows the control topics live with a
:class:`~exchange.control.state.ControlFollower` of its own; each catalog in
force and each grant event goes to a :class:`~.subjects.ViewHistory`. An
:class:`Index` of every subject and schema is built when a request needs it
and something changed (or a grant reached its end), so a lookup is a
dictionary access. If the control topics are reset under it, the service
starts over from the topics as they are (as routers do), answering 503 on
``/health`` meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import fastavro
from prometheus_client import CollectorRegistry, Gauge

from exchange.avro import schema as avro
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.control.catalog_store import Snapshot
from exchange.control.state import ControlFollower, ControlState
from exchange.errors import ControlStateReset
from exchange.http.auth import Principal
from exchange.lifecycle import AsyncService
from exchange.registry.subjects import Subject, ViewHistory, build
from exchange.registry.visibility import visible
from exchange.sharing.records import GrantEvent

log = logging.getLogger(__name__)


@dataclass
class Index:
    """Every subject and schema as of one moment; rebuilt, never changed."""

    subjects: dict[str, Subject]
    schemas: dict[int, avro.Schema]
    catalog: Catalog | None
    catalog_version: int | None
    built_at: dt.datetime
    #: schema id -> (subject, version) of every subject holding it
    by_id: dict[int, list[tuple[Subject, int]]] = field(default_factory=dict)
    #: schema id -> the schema's text (the text its id hashes)
    text: dict[int, str] = field(default_factory=dict)
    _canonical: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for subject in self.subjects.values():
            for n, sid in enumerate(subject.ids, start=1):
                self.by_id.setdefault(sid, []).append((subject, n))
        self.text = {sid: avro.canonical_json(s) for sid, s in self.schemas.items()}

    def subject(self, principal: Principal, name: str) -> Subject | None:
        """The subject ``name`` if ``principal`` may see it (None: unknown or not disclosed)."""
        subject = self.subjects.get(name)
        if subject is None or not visible(principal, subject, self.catalog):
            return None
        return subject

    def holders(self, principal: Principal, sid: int) -> list[tuple[Subject, int]]:
        """(subject, version) of every subject holding ``sid`` that ``principal`` may see."""
        return [(s, n) for s, n in self.by_id.get(sid, ()) if visible(principal, s, self.catalog)]

    def canonical(self, sid: int) -> str:
        """Avro's Parsing Canonical Form of a schema (docs, defaults and order of keys aside)."""
        form = self._canonical.get(sid)
        if form is None:
            form = self._canonical[sid] = parsing_canonical_form(self.schemas[sid])
        return form


def parsing_canonical_form(schema: Any) -> str:
    return str(fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema)))


class RegistryMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str = "gov_exchange") -> None:
        self.subjects = Gauge(
            f"{prefix}_registry_subjects", "Subjects the registry serves", registry=registry
        )
        self.schemas = Gauge(
            f"{prefix}_registry_schemas", "Schemas the registry serves", registry=registry
        )
        self.catalog_version = Gauge(
            f"{prefix}_registry_catalog_version",
            "Version of the catalog in force the registry serves (0: none loaded)",
            registry=registry,
        )
        self.index_builds = Gauge(
            f"{prefix}_registry_index_builds",
            "Times the subject index was rebuilt since the start",
            registry=registry,
        )
        self.resets = Gauge(
            f"{prefix}_registry_control_resets",
            "Times the control topics were reset under the registry (it started over)",
            registry=registry,
        )


class RegistryService(AsyncService):
    """Follows the control topics and answers what the routes ask."""

    def __init__(self, bus: Connection, metrics: RegistryMetrics | None = None) -> None:
        self.bus = bus
        self.metrics = metrics
        self._follower: ControlFollower | None = None
        self._history = ViewHistory()
        self._generation = 0
        self._index: Index | None = None
        self._index_generation = -1
        self._valid_until: dt.datetime | None = None
        self._restart: asyncio.Task[None] | None = None
        self.builds = 0
        self.resets = 0

    @property
    def ready(self) -> bool:
        f = self._follower
        return f is not None and f.caught_up.is_set() and f.reset is None

    async def start(self) -> None:
        state = ControlState(self.bus)
        history = ViewHistory()

        def on_catalog(snap: Snapshot) -> None:
            history.add_catalog(snap)
            self._generation += 1

        def on_grant_event(event: GrantEvent, reason: str | None) -> None:
            history.add_event(event)  # checked again, in time order, by the history
            self._generation += 1

        state.on_catalog = on_catalog
        state.on_grant_event = on_grant_event
        follower = ControlFollower(state)
        follower.on_reset = self._on_reset
        self._follower = follower
        await follower.start(follow=True)
        self._history = history
        self._generation += 1

    def _on_reset(self, reset: ControlStateReset) -> None:
        log.error("control topics reset under the registry; starting over: %s", reset)
        self.resets += 1
        if self.metrics is not None:
            self.metrics.resets.set(self.resets)
        if self._restart is None or self._restart.done():
            self._restart = asyncio.create_task(self._start_over(), name="registry-restart")

    async def _start_over(self) -> None:
        old, self._follower = self._follower, None
        if old is not None:
            await old.stop()
        while True:
            try:
                await self.start()
                return
            except Exception:
                log.exception("the registry could not read the control topics; retrying in 1 s")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
            self._restart = None
        if self._follower is not None:
            follower, self._follower = self._follower, None
            await follower.stop()

    def index(self) -> Index:
        """The index as of now: rebuilt only if a control record arrived or a grant ended."""
        now = dt.datetime.now(dt.UTC)
        current = self._index
        if (
            current is not None
            and self._index_generation == self._generation
            and (self._valid_until is None or now < self._valid_until)
        ):
            return current
        generation = self._generation
        state = self._follower.state if self._follower is not None else None
        registry = state.registry if state is not None else None

        def resolve(sid: int) -> avro.Schema | None:
            return registry.schema(sid) if registry is not None and sid in registry else None

        subjects, schemas = build(self._history, resolve, now)
        snap = state.snapshot if state is not None else None
        index = Index(
            subjects,
            schemas,
            self._history.catalog,
            snap.version if snap is not None else None,
            now,
        )
        self._index, self._index_generation = index, generation
        self._valid_until = self._history.book.next_expiry(now)
        self.builds += 1
        if self.metrics is not None:
            self.metrics.subjects.set(len(subjects))
            self.metrics.schemas.set(len(schemas))
            self.metrics.catalog_version.set(index.catalog_version or 0)
            self.metrics.index_builds.set(self.builds)
        return index

"""The registry's subjects and their versions, derived from the control topics alone.

Every instance derives the same subjects, versions and ids from the same
topics, so several instances behind a load balancer answer alike and none
keeps state of its own:

* ``gov.src.<provider>.<resource>-value``: version *n* is the *n*-th schema the
  catalog ever had for the resource (``Catalog.schema_history``, kept by every
  load), so the catalog's BACKWARD rule holds between versions.
* ``gov.dlv.<consumer>.<resource>-value``: each distinct view schema the consumer
  has received, in order. :class:`ViewHistory` replays the catalog snapshots and
  grant events **ordered by their own times** (load time, event time; then their
  offsets) into a grant book of its own, computing the view after each change
  with the permission manager (:func:`~exchange.sharing.policy.compute_view`),
  so the versions do not depend on the order one instance happened to read the
  topics in. The view in force now (a grant may have expired since the last
  event) is the latest version.
* ``gov.ctl.catalog-value``, ``gov.ctl.grants-value``, ``gov.audit-value``: the
  bus's own record schemas.

Ids are the bus's own (content hashes, :mod:`exchange.avro.schema`): the ones on the wire.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from exchange.audit.entry import AUDIT_ENTRY
from exchange.avro import schema as avro
from exchange.avro.control_records import CATALOG_SNAPSHOT, CATALOG_SNAPSHOT_V1
from exchange.bus import topics
from exchange.catalog.model import Catalog
from exchange.control.catalog_store import Snapshot
from exchange.sharing.grants import GrantBook
from exchange.sharing.policy import compute_view, view_schema
from exchange.sharing.records import GRANT_EVENT, GrantEvent

log = logging.getLogger(__name__)

SUFFIX = "-value"
Kind = Literal["source", "view", "control"]

#: the control records' subjects: topic -> its schemas, oldest first
CONTROL_SUBJECTS: dict[str, tuple[avro.Schema, ...]] = {
    topics.CATALOG: (CATALOG_SNAPSHOT_V1, CATALOG_SNAPSHOT),
    topics.GRANTS: (GRANT_EVENT,),
    topics.AUDIT: (AUDIT_ENTRY,),
}


@dataclass(frozen=True)
class Subject:
    """One subject: its schema ids by version (version *n* is ``ids[n - 1]``)."""

    name: str
    kind: Kind
    ids: tuple[int, ...]
    #: the department whose subject it is: the provider of a source, the consumer of a view
    owner: str | None = None
    resource: str | None = None
    #: the compatibility rule its versions keep
    compatibility: str = "BACKWARD"

    def version_of(self, sid: int) -> int | None:
        for n, known in enumerate(self.ids, start=1):
            if known == sid:
                return n
        return None


def subject_name(topic: str) -> str:
    """The TopicNameStrategy subject of a topic's values."""
    return topic + SUFFIX


@dataclass
class ViewHistory:
    """Every view schema each consumer has had, replayed in time order (see the module doc)."""

    #: (time, 0 catalog | 1 grant event, offset) -> the snapshot or event, in arrival order
    _items: list[tuple[tuple[dt.datetime, int, int], Snapshot | GrantEvent]] = field(
        default_factory=list
    )
    _last: tuple[dt.datetime, int, int] | None = None
    _catalog: Catalog | None = None
    _book: GrantBook = field(default_factory=GrantBook)
    #: (consumer, resource) -> view schema ids, in order of first appearance
    views: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    schemas: dict[int, avro.Schema] = field(default_factory=dict)
    #: (resource schema id, fields, masks) -> view schema id: each shape computed once
    _shapes: dict[tuple[Any, ...], int] = field(default_factory=dict)
    rebuilds: int = 0
    #: items arrived out of time order: replay everything before the next read
    _dirty: bool = False
    _seq: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def catalog(self) -> Catalog | None:
        return self._catalog

    @property
    def book(self) -> GrantBook:
        return self._book

    def add_catalog(self, snap: Snapshot) -> None:
        """A snapshot that became the catalog in force (as :class:`ControlState` decided)."""
        self._seq[0] += 1  # read in offset order: the offset's rank breaks ties
        self._add((snap.loaded_at, 0, self._seq[0]), snap)

    def add_event(self, event: GrantEvent) -> None:
        """A grant event as read (checked here again, under the catalog in force at its time)."""
        self._seq[1] += 1
        self._add((event.at, 1, self._seq[1]), event)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def _add(self, key: tuple[dt.datetime, int, int], item: Snapshot | GrantEvent) -> None:
        self._items.append((key, item))
        if not self._dirty and (self._last is None or key > self._last):
            self._last = key
            self._apply(item)
        else:
            # older than something applied already (clock skew between writers, or the
            # topics read in another interleaving, as at start): replayed by settle()
            self._dirty = True

    def settle(self) -> None:
        """Replay everything in time order if something arrived out of order."""
        if not self._dirty:
            return
        self._items.sort(key=lambda kv: kv[0])
        self._catalog, self._book, self.views = None, GrantBook(), {}
        self.rebuilds += 1
        for _, each in self._items:
            self._apply(each)
        self._last = self._items[-1][0] if self._items else None
        self._dirty = False

    def _apply(self, item: Snapshot | GrantEvent) -> None:
        if isinstance(item, Snapshot):
            self._catalog = item.catalog
            pairs = set(self.views) | set(self._book.subscriptions)
            pairs |= {(g.consumer, g.resource) for g in self._book.grants.values()}
            for consumer, resource in sorted(pairs):
                self._note(consumer, resource, item.loaded_at)
            return
        if self._catalog is None:
            return
        if self._book.apply(item, self._catalog) is None:
            self._note(item.consumer, item.resource, item.at)

    def _note(self, consumer: str, resource: str, at: dt.datetime) -> None:
        sid = self.view_id(consumer, resource, at)
        if sid is None:
            return
        ids = self.views.setdefault((consumer, resource), [])
        if sid not in ids:
            ids.append(sid)

    def view_id(self, consumer: str, resource: str, at: dt.datetime) -> int | None:
        """The id of the view ``consumer`` receives of ``resource`` at ``at`` (None: none)."""
        catalog = self._catalog
        if catalog is None or resource not in catalog.resources:
            return None
        res = catalog.resources[resource]
        if consumer == res.provider or consumer not in catalog.departments:
            return None
        view = compute_view(catalog, self._book, consumer, resource, at=at)
        if view.denied or not view.receiving:
            return None
        shape = (res.schema_id, view.fields, tuple(sorted(view.masks.items())))
        sid = self._shapes.get(shape)
        if sid is None:
            schema = view_schema(res, view)
            sid = self._shapes[shape] = avro.schema_id(schema)
            self.schemas[sid] = schema
        return sid


def build(
    history: ViewHistory, resolve: Any, now: dt.datetime
) -> tuple[dict[str, Subject], dict[int, avro.Schema]]:
    """Every subject and every schema it refers to, as of ``now``.

    ``resolve(id)`` gives a schema registered on ``gov.ctl.schemas`` (None if absent).
    """
    history.settle()
    subjects: dict[str, Subject] = {}
    schemas: dict[int, avro.Schema] = {}
    for topic, control in CONTROL_SUBJECTS.items():
        ids = []
        for schema in control:
            sid = avro.schema_id(schema)
            schemas[sid] = schema
            ids.append(sid)
        name = subject_name(topic)
        subjects[name] = Subject(name, "control", tuple(ids))
    catalog = history.catalog
    if catalog is None:
        return subjects, schemas
    for res in catalog.resources.values():
        ids = []
        for sid in catalog.schema_history.get(res.id) or [res.schema_id]:
            schema = res.schema_ if sid == res.schema_id else resolve(sid)
            if schema is None:
                log.warning("schema %s of %s is not on %s", sid, res.id, topics.SCHEMAS)
                continue
            schemas[sid] = schema
            ids.append(sid)
        if res.schema_id not in ids:
            ids.append(res.schema_id)
            schemas[res.schema_id] = res.schema_
        name = subject_name(topics.source(res.provider, res.id))
        subjects[name] = Subject(name, "source", tuple(ids), res.provider, res.id)
    pairs = set(history.views) | set(history.book.subscriptions)
    pairs |= {(g.consumer, g.resource) for g in history.book.grants.values()}
    for consumer, resource in sorted(pairs):
        ids = list(history.views.get((consumer, resource), ()))
        current = history.view_id(consumer, resource, now)
        if current is not None and current not in ids:
            ids.append(current)
        if not ids or resource not in catalog.resources:
            continue
        for sid in ids:
            schemas[sid] = history.schemas[sid]
        name = subject_name(topics.delivery(consumer, resource))
        # a view gains fields (without defaults) when a grant is approved: not BACKWARD
        subjects[name] = Subject(name, "view", tuple(ids), consumer, resource, "NONE")
    return subjects, schemas

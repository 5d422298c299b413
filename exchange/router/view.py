"""A view compiled for the router: project, filter, mask, encode — per record, cheaply.

Compiled once when the catalog or a grant changes, never per record: the
row filter is a compiled CEL program, masks are closures with their
per-consumer key bound, the view schema is parsed and registered.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.avro.scan import LazyRecord, PlanItem, Scanner, compile_projection
from exchange.bus import topics
from exchange.catalog.model import Resource
from exchange.enforce.masks import compile_mask, consumer_key, parse_mask
from exchange.enforce.rowfilter import RowFilter, compile_filter
from exchange.router.mask_secret import fingerprint
from exchange.sharing.policy import View, view_schema


@dataclass
class CompiledView:
    view: View
    topic: str
    schema: avro.Schema
    schema_id: int
    parsed: Any
    row_filter: RowFilter | None
    masks: dict[str, Callable[[Any], str | None]]
    passthrough: bool  # every field, unmasked, unfiltered: forward the source bytes
    key_plain: bool  # the key field is delivered unmasked, so the Kafka key may be too
    key_secret: bytes
    #: how to build the view from byte slices of the source (None: schema not scannable)
    plan: list[PlanItem] | None = None
    #: the framed view from the source's byte slices, or None if the row filter drops the
    #: record; only the fields read are decoded (None: the schema is not scanned)
    slice_renderer: Callable[[bytes, list[int], LazyRecord], bytes | None] | None = None
    #: the Kafka key for this consumer from the source key (the resource's key field),
    #: None when the view delivers that field in clear and the source key may travel as
    #: it is. Otherwise the key would leak the field, so it is a keyed hash (BLAKE2b in
    #: keyed mode, a MAC): the same source key always gives the same delivery key (order
    #: per key is kept), but it reveals nothing.
    key_hash: Callable[[bytes], bytes] | None = None
    #: the fingerprint of the consumer's mask key when the view hashes (a ``hash`` mask or
    #: a hashed delivery key), None else: audited with each delivery, it changes when the
    #: master secret is rotated (:mod:`exchange.router.mask_secret`)
    key_fingerprint: str | None = None
    #: the plan's projection when made already (shared by the unmasked views of one shape)
    projection: Callable[[bytes, list[int], LazyRecord], bytes] | None = None

    def __post_init__(self) -> None:
        hashes = any(parse_mask(spec).rule == "hash" for spec in self.view.masks.values())
        if not self.key_plain:
            self.key_hash = functools.partial(_hashed_key, self.key_secret)
        if hashes or not self.key_plain:
            self.key_fingerprint = fingerprint(self.key_secret)
        if self.plan is None:
            return
        project = self.projection or compile_projection(self.plan, wire.frame(self.schema_id, b""))
        if self.row_filter is None:
            self.slice_renderer = project
            return
        matches = self.row_filter.matches

        def filtered(body: bytes, offsets: list[int], record: LazyRecord) -> bytes | None:
            return project(body, offsets, record) if matches(record) else None

        self.slice_renderer = filtered

    @property
    def consumer(self) -> str:
        return self.view.consumer

    def active(self, at: dt.datetime) -> bool:
        return self.view.valid_until is None or at < self.view.valid_until

    def render(self, record: dict[str, Any]) -> bytes | None:
        """The framed view of one decoded source record, or None if the filter drops it."""
        if self.row_filter is not None and not self.row_filter.matches(record):
            return None
        masks = self.masks
        out = {
            name: (masks[name](record[name]) if name in masks else record[name])
            for name in self.view.fields
        }
        return wire.frame(self.schema_id, wire.encode(self.parsed, out))


def _hashed_key(secret: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(key, key=secret, digest_size=16).hexdigest().encode()


@functools.lru_cache(maxsize=65536)
def _consumer_key(master_secret: bytes, consumer: str, resource: str) -> bytes:
    return consumer_key(master_secret, consumer, resource)


#: compiled view schemas by shape: (resource schema id, fields, masks) -> (schema, id, parsed)
_SHAPES: dict[tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]], tuple[Any, int, Any]] = {}


def _shape(res: Resource, view: View) -> tuple[Any, int, Any]:
    """The view schema, its id and parsed form; computed once per distinct shape."""
    key = (res.schema_id, view.fields, tuple(sorted(view.masks.items())))
    shape = _SHAPES.get(key)
    if shape is None:
        schema = view_schema(res, view)
        if len(_SHAPES) > 65536:
            _SHAPES.clear()
        shape = _SHAPES[key] = (schema, avro.schema_id(schema), avro.parse(schema))
    return shape


def compile_view(
    res: Resource, view: View, master_secret: bytes, scanner: Scanner | None = None
) -> CompiledView:
    schema, sid, parsed = _shape(res, view)
    key = _consumer_key(master_secret, view.consumer, res.id)
    masks = {name: compile_mask(parse_mask(spec), key) for name, spec in view.masks.items()}
    plan = projection = None
    if scanner is not None:
        if masks:  # its masks are this consumer's (keyed): a plan of its own
            nullable = _nullable(res)
            plan = [
                (name, scanner.index[name], masks.get(name), nullable[name]) for name in view.fields
            ]
        else:
            plan, projection = _unmasked_projection(res, scanner, view.fields, sid)
    return CompiledView(
        view=view,
        topic=topics.delivery(view.consumer, res.id),
        schema=schema,
        schema_id=sid,
        parsed=parsed,
        row_filter=compile_filter(view.row_filter, res.field_names()) if view.row_filter else None,
        masks=masks,
        passthrough=sid == res.schema_id and view.row_filter is None,
        key_plain=res.key in view.fields and res.key not in view.masks,
        key_secret=key,
        plan=plan,
        projection=projection,
    )


#: per scanner (one per resource schema): the plan and projection of each unmasked shape
#: (fields, view schema id). Consumers entitled to the same fields without masks (most of
#: them) share one, so a recompile of thousands of views makes few (measured: see the
#: commit that added this)
_UNMASKED: weakref.WeakKeyDictionary[
    Scanner,
    dict[tuple[tuple[str, ...], int], tuple[list[PlanItem], Callable[..., bytes]]],
] = weakref.WeakKeyDictionary()


def _unmasked_projection(
    res: Resource, scanner: Scanner, fields: tuple[str, ...], schema_id: int
) -> tuple[list[PlanItem], Callable[..., bytes]]:
    shapes = _UNMASKED.setdefault(scanner, {})
    made = shapes.get((fields, schema_id))
    if made is None:
        nullable = _nullable(res)
        plan: list[PlanItem] = [
            (name, scanner.index[name], None, nullable[name]) for name in fields
        ]
        if len(shapes) > 4096:
            shapes.clear()
        made = shapes[(fields, schema_id)] = (
            plan,
            compile_projection(plan, wire.frame(schema_id, b"")),
        )
    return made


def _nullable(res: Resource) -> dict[str, bool]:
    return {f.name: f.nullable for f in res.fields}

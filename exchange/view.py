"""A view compiled for the router: project, filter, mask, encode — per record, cheaply.

Compiled once when the catalog or a grant changes, never per record: the
row filter is a compiled CEL program, masks are closures with their
per-consumer key bound, the view schema is parsed and registered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange import schema as avro
from exchange import topics, wire
from exchange.avroscan import LazyRecord, PlanItem, Scanner, project
from exchange.catalog import Resource
from exchange.masks import compile_mask, consumer_key, parse_mask
from exchange.policy import View, view_schema
from exchange.rowfilter import RowFilter, compile_filter


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

    def delivery_key(self, key: bytes | None) -> bytes | None:
        """The Kafka key for this consumer.

        The source key is the value of the resource's key field. If the view
        does not deliver that field in clear, the key would leak it, so it is
        replaced by a keyed hash: the same source key always gives the same
        delivery key (order per key is kept), but it reveals nothing.
        """
        if key is None or self.key_plain:
            return key
        return hmac.new(self.key_secret, key, hashlib.sha256).hexdigest()[:32].encode()

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

    def render_slices(self, body: bytes, offsets: list[int], record: LazyRecord) -> bytes | None:
        """Like :meth:`render`, from the source's byte slices: only read fields are decoded."""
        if self.row_filter is not None and not self.row_filter.matches(record):
            return None
        assert self.plan is not None
        return wire.frame(self.schema_id, project(body, offsets, record, self.plan))


def compile_view(
    res: Resource, view: View, master_secret: bytes, scanner: Scanner | None = None
) -> CompiledView:
    schema = view_schema(res, view)
    key = consumer_key(master_secret, view.consumer, res.id)
    masks = {name: compile_mask(parse_mask(spec), key) for name, spec in view.masks.items()}
    plan = None
    if scanner is not None:
        plan = [
            (name, scanner.index[name], masks.get(name), res.field(name).nullable)
            for name in view.fields
        ]
    return CompiledView(
        view=view,
        topic=topics.delivery(view.consumer, res.id),
        schema=schema,
        schema_id=avro.schema_id(schema),
        parsed=avro.parse(schema),
        row_filter=compile_filter(view.row_filter, res.field_names()) if view.row_filter else None,
        masks=masks,
        passthrough=schema is res.schema_ and view.row_filter is None,
        key_plain=res.key in view.fields and res.key not in view.masks,
        key_secret=key,
        plan=plan,
    )

"""Rendering a backfill's source records through the consumer's view: what to keep, what to drop.

What a backfill scan does with each batch of a source partition it reads, in
whatever thread or process reads it (:mod:`exchange.router.backfill_reader`,
:mod:`exchange.router.backfill_worker`): each record before the cut-over
becomes (key, source offset, the view's framed bytes or None when the view's
row filter drops it, record id), rendered by the very
:class:`~exchange.router.view.CompiledView` live routing uses; a record from
the cut-over on, or a tombstone, becomes its key to drop. It touches nothing
the router's event loop uses: the result is applied there
(:meth:`exchange.router.backfill_scan.BackfillScan.apply`).
"""

from __future__ import annotations

from typing import Any

from exchange.bus.envelope import record_ids
from exchange.catalog.model import Resource
from exchange.errors import DecodeError
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder

#: what reading a batch of a partition's records gave: per record, (key, source offset,
#: the view's framed bytes or None if filtered out, record id), or (key, -1, None, b"")
#: for a key to drop (a tombstone, or a record from the cut-over on); and the next offset
Step = tuple[list[tuple[bytes, int, bytes | None, bytes]], int]


class Renderer:
    """Renders source records of ``res`` through ``view`` (``view`` may be replaced by one
    of the same shape, compiled again)."""

    def __init__(self, res: Resource, decoder: Decoder, view: CompiledView) -> None:
        self.res = res
        self.decoder = decoder
        self.view = view
        scanner = decoder.scanner
        self._key_bytes = scanner.string_bytes(res.key) if scanner is not None else None
        self._record_id = record_ids(res.id)

    def render(self, cutover: int, records: list[Any]) -> Step:
        """Read ``records`` (the next ones of a partition whose cut-over is ``cutover``):
        what to keep and drop, and the next offset."""
        out: list[tuple[bytes, int, bytes | None, bytes]] = []
        for rec in records:
            value = rec.value
            if value is None:  # a tombstone: the key was deleted, nothing older comes back
                if rec.key is not None:
                    out.append((rec.key, -1, None, b""))
                continue
            try:
                if rec.offset >= cutover:  # delivered live: drop what the backfill holds
                    out.append((self._key(value), -1, None, b""))
                    continue
                key, view_bytes, rid = self._render(value)
            except DecodeError:
                continue  # live routing dead-lettered it
            out.append((key, rec.offset, view_bytes, rid))
        return out, records[-1].offset + 1

    def _body(self, value: bytes) -> tuple[Any, bool, Any, Any]:
        """(body, current schema, record, scan offsets) of a source value."""
        return self.decoder.read(value)

    def _key(self, value: bytes) -> bytes:
        body, _, record, offsets = self._body(value)
        return self._key_of(body, record, offsets)

    def _key_of(self, body: Any, record: Any, offsets: Any) -> bytes:
        """The record's key, sliced from its body when it was scanned."""
        if self._key_bytes is not None and offsets is not None:
            return bytes(self._key_bytes(body, offsets))
        return str(record[self.res.key]).encode()

    def _render(self, value: bytes) -> tuple[bytes, bytes | None, bytes]:
        """Key, the view's framed bytes (None: filtered out) and record id of a value."""
        view = self.view
        body, same_schema, record, offsets = self._body(value)
        key = self._key_of(body, record, offsets)
        if view.passthrough and same_schema:
            out: bytes | None = value
        elif offsets is not None and view.slice_renderer is not None:
            out = view.slice_renderer(body, offsets, record)
        else:
            out = view.render(record)
        return key, out, self._record_id(body)

"""What an approver sees before approving: masks applied to sample records, the row filter checked.

The records are made up from the resource's schema by the sample generator
(realistic ID numbers, names, dates; never a department's real data, which
the console does not read). The masks and the filter go through the very
functions the grant book and the router use (:func:`parse_mask`,
:func:`check_applicable`, :func:`compile_mask`, :func:`compile_filter`), so
what the preview accepts is what the permission manager accepts; the
preview's ``hash`` values use a key made for the preview, not the consumer's.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exchange.catalog.model import Resource
from exchange.dev import sample  # made-up records only: see the module doc
from exchange.enforce.masks import MaskError, check_applicable, compile_mask, parse_mask
from exchange.enforce.rowfilter import FilterError, compile_filter, to_cel
from exchange.errors import ExchangeError
from exchange.sharing import limits

SAMPLES = 5
_PREVIEW_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class FilterCheck:
    ok: bool
    message: str
    matches: int = 0  # of the sample records
    total: int = 0


@dataclass(frozen=True)
class MaskPreview:
    fields: list[str]
    rows: list[list[tuple[str, str]]]  # per record: (original, shown) per field
    errors: dict[str, str]


@functools.lru_cache(maxsize=64)
def _records(resource_id: str, schema_text: str, count: int) -> tuple[dict[str, Any], ...]:
    import json

    return tuple(sample.generate(json.loads(schema_text), count, seed=20))


def records(res: Resource, count: int = SAMPLES) -> list[dict[str, Any]]:
    """Made-up records of ``res`` (the same ones each time)."""
    import json

    return list(_records(res.id, json.dumps(res.schema_, sort_keys=True), count))


def check_filter(res: Resource, expression: str) -> FilterCheck:
    """The row filter compiled as the grant book compiles it, then run on the sample records."""
    if not expression.strip():
        return FilterCheck(True, "无行过滤 no row filter: every record")
    try:
        limits.check_row_filter(expression, res)
        row_filter = compile_filter(expression, res.field_names())
    except (FilterError, ExchangeError) as exc:
        return FilterCheck(False, str(exc))
    samples = records(res)
    try:
        hits = sum(1 for r in samples if row_filter.matches(r))
    except Exception as exc:  # a failure on a record drops it at routing: say so here
        return FilterCheck(False, f"the filter fails on a sample record: {exc}")
    return FilterCheck(True, "表达式有效 valid expression", hits, len(samples))


def _shown(value: Any) -> str:
    if value is None:
        return "∅"
    return str(to_cel(value)) if not isinstance(value, str) else value


def preview_masks(res: Resource, fields: list[str], masks: Mapping[str, str]) -> MaskPreview:
    """Each chosen field of the sample records, before and after its mask."""
    funcs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    types = {f.name: f.avro_type for f in res.fields}
    for name, text in masks.items():
        if not text:
            continue
        try:
            spec = parse_mask(text)
            check_applicable(spec, types.get(name), name)
            funcs[name] = compile_mask(spec, _PREVIEW_KEY)
        except MaskError as exc:
            errors[name] = str(exc)
    rows = []
    for record in records(res):
        row = []
        for name in fields:
            original = record.get(name)
            shown = funcs[name](original) if name in funcs else original
            row.append((_shown(original), _shown(shown)))
        rows.append(row)
    return MaskPreview(fields, rows, errors)

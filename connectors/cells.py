"""One cell of a CSV file or a worksheet as the JSON-form value of its field.

CSV cells are text, read as JSON Lines values are
(:mod:`exchange.avro.jsoncodec`): dates ``YYYY-MM-DD``, timestamps ISO-8601
(without an offset: China time), decimals as written, booleans
``true``/``false`` (or ``1``/``0``), bytes in base64, records, arrays and maps
as JSON. An empty cell is NULL.

Worksheet cells are typed. A string field keeps text as text, so the leading
zeros of a code typed as text survive; a number in a string field is written
without a spurious ``.0``, and one of 16 digits or more is refused, since
Excel kept only 15 of them (an ID number typed as a number has lost its
last digits: the column must be formatted as text). Date cells feed date and
timestamp fields; a date field given a plain number is refused with a hint
(declare the ``date`` normalisation to read Excel serial numbers).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from connectors.mapping import FieldType

_INT = re.compile(r"^[+-]?\d+$")
_EXACT_DIGITS = 15  # what an Excel number keeps
_TEXT_KINDS = ("string", "enum", "uuid")


def from_text(text: str, ft: FieldType) -> Any:
    """The JSON-form value of one text cell for a field of type ``ft`` (empty: NULL)."""
    if text == "":
        return None
    kind = ft.kind
    if kind in ("int", "long"):
        if not _INT.match(text.strip()):
            raise ValueError(f"{text!r} is not an integer")
        return int(text)
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false, 1/0)")
    if kind in ("record", "array", "map"):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"{text!r} is not JSON") from None
    return text


def number_text(value: float | int) -> str:
    """A worksheet number as the text a person typed: no ``.0``, no exponent."""
    if isinstance(value, int):
        if len(str(abs(value))) > _EXACT_DIGITS:
            raise ValueError(_too_long(value))
        return str(value)
    if value.is_integer():
        if abs(value) >= 10**_EXACT_DIGITS:
            raise ValueError(_too_long(value))
        return str(int(value))
    return format(value, f".{_EXACT_DIGITS}g")


def _too_long(value: float | int) -> str:
    return (
        f"the number {value:.0f} has more digits than Excel keeps ({_EXACT_DIGITS}): its last "
        "digits are lost; format the column as text and enter the values again"
    )


def from_typed(value: Any, ft: FieldType) -> Any:
    """The JSON-form value of one worksheet cell (str, int, float, bool, datetime, None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return from_text(value, ft)
    kind = ft.kind
    if isinstance(value, bool):
        if kind == "boolean":
            return value
        raise ValueError(f"{value!r} is a boolean, not a {ft.text}")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return _temporal(value, ft)
    if isinstance(value, int | float):
        return _number(value, ft)
    raise ValueError(f"{value!r} cannot feed a {ft.text} field")


def _number(value: float | int, ft: FieldType) -> Any:
    kind = ft.kind
    if kind in _TEXT_KINDS or kind == "decimal":
        return number_text(value)
    if kind in ("int", "long"):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean" and value in (0, 1):
        return bool(value)
    if kind == "date":
        raise ValueError(
            f"{value!r} is a number, not a date: format the column as a date, or declare the "
            "'date' normalisation on the field to read Excel serial numbers"
        )
    raise ValueError(f"{value!r} is a number, not a {ft.text}")


def _temporal(value: dt.datetime | dt.date | dt.time, ft: FieldType) -> Any:
    kind = ft.kind
    if isinstance(value, dt.time):
        if kind in _TEXT_KINDS:
            return value.isoformat()
        raise ValueError(f"{value.isoformat()} is a time of day, not a {ft.text}")
    if isinstance(value, dt.datetime):
        midnight = value.time() == dt.time(0)
        if kind == "date":
            if not midnight:
                raise ValueError(f"{value.isoformat(sep=' ')} has a time of day: not a date")
            return value.date().isoformat()
        if kind.startswith(("timestamp", "local-timestamp")):
            return value.isoformat()
        if kind in _TEXT_KINDS:
            return value.date().isoformat() if midnight else value.isoformat(sep=" ")
        raise ValueError(f"{value.isoformat(sep=' ')} is a date, not a {ft.text}")
    if kind in ("date", *_TEXT_KINDS):
        return value.isoformat()
    if kind.startswith(("timestamp", "local-timestamp")):
        return dt.datetime.combine(value, dt.time(0)).isoformat()
    raise ValueError(f"{value.isoformat()} is a date, not a {ft.text}")

"""Normalisation a resource's schema can declare per field (规范化), off unless asked.

A field of the Avro schema lists the rules it wants::

    {"name": "id_number", "type": "string", "normalise": ["half_width", "trim", "id_check_letter"]}

The file connectors apply them to every value of the field before it is
checked against the schema, always in this order whatever the order written:

``half_width``       全角 → 半角: full-width digits, letters and punctuation
                     (U+FF01–U+FF5E) and the ideographic space U+3000 become
                     their ASCII forms (``１２３ＡＢ`` → ``123AB``)
``trim``             leading and trailing spaces removed: ordinary, full-width
                     (U+3000), no-break, tabs and line breaks
``id_check_letter``  an 18-character citizen ID number (公民身份号码) ending
                     in a lower-case check letter ``x`` gets ``X`` (GB 11643)
``date``             ``2024年3月5日``, ``2024/3/5``, ``2024.3.5``, ``2024-3-5``,
                     ``20240305`` and Excel serial numbers (45356) become ISO
                     ``2024-03-05``; on date fields, or string fields holding dates

A value a rule changed is counted per rule for the import report; a value
that still does not fit the schema is refused as any other would be.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from connectors import mapping

RULES = ("half_width", "trim", "id_check_letter", "date")
#: the field kinds each rule applies to (mapping.FieldType.kind)
APPLIES_TO: dict[str, frozenset[str]] = {
    "half_width": frozenset({"string", "enum", "date", "decimal", "int", "long"}),
    "trim": frozenset({"string", "enum", "date", "decimal", "int", "long", "float", "double"}),
    "id_check_letter": frozenset({"string"}),
    "date": frozenset({"string", "date"}),
}
PROPERTY = "normalise"

_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_SPACES = " \t\r\n\u3000\u00a0\u2002\u2003\u2009\u200b\ufeff"
_ID_LOWER_X = re.compile(r"^\d{17}x$")
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日$"),
    re.compile(r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_SERIAL = re.compile(r"^\d{1,7}(\.0+)?$")
# Excel's day 0 is 1899-12-31, and it counts a 29 February 1900 that never was (serial 60)
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_MAX_SERIAL = 2_958_465  # 9999-12-31


class RuleError(ValueError):
    """A schema declares a rule that does not exist or does not fit its field."""


def declared(schema: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Field: its rules, in the order they run, for the fields that declare any.

    Raises :class:`RuleError` naming the field for an unknown rule or one
    that cannot apply to the field's type.
    """
    out: dict[str, tuple[str, ...]] = {}
    for f in schema.get("fields", []):
        wanted = f.get(PROPERTY)
        if wanted is None:
            continue
        name = f["name"]
        if isinstance(wanted, str):
            wanted = [wanted]
        if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
            raise RuleError(f"field {name!r}: {PROPERTY!r} must be a list of rule names")
        kind = mapping.field_type(f["type"]).kind
        for rule in wanted:
            if rule not in APPLIES_TO:
                raise RuleError(
                    f"field {name!r}: unknown normalisation {rule!r} (known: {', '.join(RULES)})"
                )
            if kind not in APPLIES_TO[rule]:
                raise RuleError(f"field {name!r}: normalisation {rule!r} does not apply to {kind}")
        out[name] = tuple(r for r in RULES if r in wanted)
    return out


def half_width(text: str) -> str:
    return text.translate(_FULL_WIDTH)


def trim(text: str) -> str:
    return text.strip(_SPACES)


def id_check_letter(text: str) -> str:
    return text[:-1] + "X" if _ID_LOWER_X.match(text) else text


def excel_serial(serial: float) -> dt.date:
    """The date of an Excel serial day number (1900 date system); ValueError out of range."""
    day = int(serial)
    if not 1 <= day <= _MAX_SERIAL:
        raise ValueError(f"{serial!r} is not an Excel date serial number (1 to {_MAX_SERIAL})")
    if day < 61:  # before Excel's phantom 29 February 1900
        day += 1
    return _EXCEL_EPOCH + dt.timedelta(days=day)


def iso_date(value: Any) -> Any:
    """``value`` as an ISO date string when it is written as one of the known forms; else as is.

    Typed dates of a worksheet are left alone: they are dates already, not normalised.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return excel_serial(value).isoformat()
    if not isinstance(value, str):
        return value
    text = value.strip()
    for pattern in _DATE_PATTERNS:
        m = pattern.match(text)
        if m:
            try:
                return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
            except ValueError:
                raise ValueError(f"{value!r} is not a date of the calendar") from None
    if _SERIAL.match(text):
        return excel_serial(float(text)).isoformat()
    return value


_TEXT_RULES = {"half_width": half_width, "trim": trim, "id_check_letter": id_check_letter}


class Normaliser:
    """Applies the declared rules of a resource's fields and counts what each rule changed."""

    def __init__(self, rules: Mapping[str, tuple[str, ...]]) -> None:
        self.rules = dict(rules)
        self.counts: Counter[str] = Counter()

    def apply(self, field: str, value: Any) -> Any:
        """``value`` with the field's rules applied; ValueError when a date cannot be one."""
        rules = self.rules.get(field)
        if not rules or value is None:
            return value
        for rule in rules:
            if rule == "date":
                new = iso_date(value)
            elif isinstance(value, str):
                new = _TEXT_RULES[rule](value)
            else:
                continue
            if new != value:
                self.counts[rule] += 1
                value = new
        return value

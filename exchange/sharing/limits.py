"""Limits on what a command may carry, checked before it is written or audited.

:class:`~exchange.sharing.grants.GrantBook` checks the rules of sharing (who may
approve, which fields, which filters). This module checks the text a
command carries, so that a hostile or broken caller gets a clear refusal
instead of a crash halfway, and nothing it sent can break the control
topics or the access log:

* ids (department, resource, application, grant, field names, mask
  targets) are at most :data:`MAX_ID_CHARS` characters, not empty, and
  contain no control or format character;
* free text (purpose, legal basis, reasons) is at most
  :data:`~exchange.sharing.records.MAX_TEXT` characters and contains no control or
  format character except tab and newline (no terminal escapes, no
  right-to-left overrides that make an audit report read differently);
* no text may contain a lone surrogate: what Python makes of bytes that are
  not UTF-8 (``surrogateescape``), which cannot be encoded for the bus;
* an application or approval names at most :data:`MAX_FIELDS` fields and
  masks; a row filter is at most
  :data:`~exchange.enforce.rowfilter.MAX_FILTER_CHARS` characters;
* a valid-until time carries its time zone;
* a row filter that compiles must be a condition: one giving a string or a
  number for a sample record of the resource is refused (it would deliver
  nothing, silently).

:func:`shown` gives the form in which a refused value is quoted in a
refusal or an audit entry: escaped and cut short, never the raw value.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from exchange import beijing
from exchange.avro.probe import probe_records
from exchange.catalog.model import Resource
from exchange.enforce.rowfilter import MAX_FILTER_CHARS, FilterError, compile_filter, to_cel
from exchange.errors import CommandRefused
from exchange.sharing.records import MAX_QUOTA, MAX_TEXT, GrantEvent

__all__ = [
    "MAX_AUDIT_TEXT",
    "MAX_FIELDS",
    "MAX_ID_CHARS",
    "MAX_SHOWN",
    "check_event",
    "check_fields",
    "check_id",
    "check_masks",
    "check_quota",
    "check_row_filter",
    "check_text",
    "check_until",
    "safe",
    "shown",
]

MAX_ID_CHARS = 200
"""Longest id accepted: department, resource, application, grant, field."""
MAX_FIELDS = 500
"""Most fields (or masks) one application or approval may name."""
MAX_AUDIT_TEXT = 2000
"""Longest text fact (purpose, ids, reason) an audit entry holds as given."""
MAX_SHOWN = 80
"""How much of a refused value a refusal quotes."""
PROBE_RECORDS = 12
"""Typical records (:mod:`exchange.avro.probe`) a row filter is tried on for a non-boolean result."""

# Unicode categories never allowed: control (Cc), format (Cf: bidi overrides, zero
# width), surrogate (Cs), private use (Co), line/paragraph separators (Zl, Zp)
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_TEXT_CONTROLS = frozenset("\t\n")  # allowed in free text


def _bad_char(value: str, allowed: frozenset[str]) -> tuple[int, str] | None:
    """Position and description of the first character not allowed, or None."""
    if value.isprintable():
        return None  # fast path: no control, format, separator or surrogate character
    for i, c in enumerate(value):
        if c in allowed:
            continue
        category = unicodedata.category(c)
        if category == "Cs":
            return i, f"a lone surrogate U+{ord(c):04X} (bytes that are not UTF-8)"
        if category in _BAD_CATEGORIES:
            return i, f"the control or format character U+{ord(c):04X}"
    return None


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` quoted for a message: escaped (repr), cut short with an ellipsis."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}…"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def safe(value: str, limit: int) -> str:
    """``value`` if it is clean and short enough for the access log, else :func:`shown` of it."""
    if len(value) <= limit and _bad_char(value, _TEXT_CONTROLS) is None:
        return value
    return shown(value, min(limit, 2 * MAX_SHOWN))


def _refuse(message: str) -> CommandRefused:
    return CommandRefused(message)


def check_id(value: object, what: str) -> None:
    """An id: text of 1 to :data:`MAX_ID_CHARS` characters, no control or format character."""
    if not isinstance(value, str):
        raise _refuse(f"the {what} must be text, not {type(value).__name__}")
    if not value.strip():
        raise _refuse(f"the {what} is empty")
    if len(value) > MAX_ID_CHARS:
        raise _refuse(
            f"the {what} {shown(value)} is {len(value)} characters long; "
            f"at most {MAX_ID_CHARS} are allowed"
        )
    bad = _bad_char(value, frozenset())
    if bad is not None:
        raise _refuse(f"the {what} {shown(value)} contains {bad[1]} at position {bad[0]}")


def check_text(value: object, what: str, *, limit: int = MAX_TEXT) -> None:
    """Free text (None allowed): at most ``limit`` characters, tab and newline the only controls."""
    if value is None:
        return
    if not isinstance(value, str):
        raise _refuse(f"{what} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise _refuse(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    bad = _bad_char(value, _TEXT_CONTROLS)
    if bad is not None:
        raise _refuse(f"{what} contains {bad[1]} at position {bad[0]}")


def check_fields(fields: Iterable[object] | None, what: str = "field") -> None:
    if fields is None:
        return
    if isinstance(fields, str):
        raise _refuse(f"name the {what}s as a list, not one text {shown(fields)}")
    items = list(fields)
    if len(items) > MAX_FIELDS:
        raise _refuse(f"{len(items)} {what}s named; at most {MAX_FIELDS} are allowed")
    for name in items:
        check_id(name, what)


def check_masks(masks: Mapping[Any, Any] | None) -> None:
    if not masks:
        return
    check_fields(list(masks), "masked field")
    for name, rule in masks.items():
        check_text(rule, f"the mask rule for {name!r}", limit=MAX_ID_CHARS)


def check_until(until: object) -> None:
    """A valid-until follows :data:`exchange.beijing.EXPIRY_RULE` (a zone-less time is refused)."""
    if until is None:
        return
    if not isinstance(until, dt.datetime):
        raise _refuse(f"valid-until must be a date and time, not {type(until).__name__}")
    try:
        beijing.expiry(until)
    except beijing.ExpiryError as exc:
        raise _refuse(str(exc)) from None


def check_row_filter(expression: str | None, res: Resource | None = None) -> None:
    """A row filter's text; with ``res``, also that it gives a boolean for typical records.

    A filter that does not compile is left to the grant book, which refuses it
    with the compiler's reason.
    """
    check_text(expression, "the row filter", limit=MAX_FILTER_CHARS)
    if expression is None or res is None:
        return
    try:
        row_filter = compile_filter(expression, res.field_names())
    except FilterError:
        return
    if not row_filter.variables:
        return  # a constant: compile_filter already insists on true or false
    import cel  # the filter compiled, so the library is loaded already

    program = cel.compile(expression)
    for record in probe_records(res.schema_, PROBE_RECORDS):
        context = {name: to_cel(record.get(name)) for name in row_filter.variables}
        try:
            result = program.execute(context)
        except Exception:  # noqa: S112  a null field, say: fails closed at routing, not our case
            continue
        if not isinstance(result, bool):
            raise _refuse(
                f"row filter refused: it gives {type(result).__name__} {shown(result)} for a "
                "record, not true or false; a row filter is a condition, such as "
                f'{sorted(row_filter.variables)[0]} == "..."'
            )


def check_quota(value: object, what: str) -> None:
    """A quota (None: none): a whole number from 1 to :data:`MAX_QUOTA`."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(f"the {what} must be a whole number, not {shown(value)}")
    if not 1 <= value <= MAX_QUOTA:
        raise _refuse(f"the {what} is {value}; it must be from 1 to {MAX_QUOTA}")


def check_event(ev: GrantEvent, *, row_filter: bool = True) -> None:
    """Every limit above, on a command about to be written (or replayed).

    ``row_filter=False`` skips compiling and trying the row filter (replay does:
    the router compiles every filter anyway and delivers nothing if it cannot).
    """
    check_id(ev.event_id, "event id")
    check_id(ev.actor, "department")
    check_id(ev.consumer, "consumer")
    check_id(ev.resource, "resource")
    if ev.application_id is not None:
        check_id(ev.application_id, "application id")
    if ev.grant_id is not None:
        check_id(ev.grant_id, "grant id")
    check_fields(ev.fields)
    check_text(ev.purpose, "the purpose of use (用途)")
    check_text(ev.legal_basis, "the legal basis")
    check_text(ev.reason, "the reason")
    if row_filter:
        check_row_filter(ev.row_filter)
    check_masks(ev.masks)
    check_until(ev.valid_until)
    if ev.grant_kind is not None:
        check_id(ev.grant_kind, "grant kind")
    check_quota(ev.quota_per_second, "quota per second")
    check_quota(ev.quota_per_day, "quota per day")

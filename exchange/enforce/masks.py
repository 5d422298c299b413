"""Field masks: named rules a provider attaches to a field it shares.

A provider that approves another department's access to a conditional field
may ask for the field to be masked. A mask is written as a short spec string,
``RULE`` or ``RULE:P1:P2``; that is what ``--mask FIELD=RULE`` on the command
line passes. The rules are:

================  ==============================================================
Spec              Effect (the masked value is always delivered as a string)
================  ==============================================================
``keep:N:M``      keep the first N and last M characters, every other character
                  becomes ``*``: ``330102199001011234`` with ``keep:6:4`` gives
                  ``330102********1234``. A value of N+M characters or fewer is
                  masked completely, so the mask never gives a short value away.
``replace``       replace the whole value with ``***``; ``replace:TEXT`` uses
                  TEXT instead (TEXT may itself contain ``:``).
``hash``          keyed hash (HMAC-SHA256, 32 hex characters) with a key of
                  its own for every consumer and resource: one consumer always
                  gets the same value for the same input, so it can join its
                  own records, but two consumers get different values and
                  cannot join with each other.
``year``          keep the year only (``1990``); date and timestamp fields.
``surname``       keep the first character of a Chinese name: ``张三丰`` gives
                  ``张**``.
================  ==============================================================

``None`` (a null in a nullable field) stays ``None`` under every rule.

Everything is checked and prepared once, when the grant is made:
:func:`parse_mask` checks the spec, :func:`check_applicable` checks that the
rule suits the field's Avro type, and :func:`compile_mask` returns a plain
function the router calls for every record. Text is converted the way the
JSON form of a record shows it (:mod:`exchange.avro.jsoncodec`): dates as
``2026-11-26``, timestamps in China time with milliseconds, decimals as
written.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange.avro.jsoncodec import CHINA_TZ, to_jsonable
from exchange.avro.schema import non_null_type
from exchange.enforce.mask_rules import KNOWN_RULES
from exchange.errors import ExchangeError

__all__ = [
    "HASH_HEX_CHARS",
    "KNOWN_RULES",
    "MIN_MASTER_SECRET_BYTES",
    "MaskError",
    "MaskRuleError",
    "MaskSpec",
    "check_applicable",
    "compile_mask",
    "consumer_key",
    "parse_mask",
]

HASH_HEX_CHARS = 32
"""Length of a ``hash`` mask value: 32 hex characters, that is 128 bits."""

MIN_MASTER_SECRET_BYTES = 16
"""A shorter master secret would let anyone guess it and undo ``hash`` masks."""

_MAX_PARAM = 999
_MAX_REPLACE_TEXT = 200
_DEFAULT_REPLACEMENT = "***"
_KEY_LABEL = "gov-exchange mask hash key v1"

# Avro types a rule can be applied to.
_DATE_TYPES = frozenset(
    {
        "date",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)
_KEEP_BASE_TYPES = frozenset({"string", "int", "long", "float", "double", "enum"})
_KEEP_LOGICAL_TYPES = _DATE_TYPES | {"decimal", "uuid", "time-millis", "time-micros"}


class MaskError(ExchangeError):
    """A mask spec is wrong, or its rule does not suit the field it is put on."""

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None) -> None:
        super().__init__(message, field=field, rule=rule)
        self.field = field
        self.rule = rule


MaskRuleError = MaskError
"""Another name for :class:`MaskError`."""


def _known_rules_text() -> str:
    return ", ".join(KNOWN_RULES)


def _check_count(rule: str, params: tuple[str, ...], allowed: tuple[int, ...], usage: str) -> None:
    if len(params) not in allowed:
        raise MaskError(
            f"mask {rule!r} takes {_count_text(allowed)}, got {len(params)}; write {usage}",
            rule=rule,
        )


def _count_text(allowed: tuple[int, ...]) -> str:
    if allowed == (0,):
        return "no parameters"
    return " or ".join(f"{n} parameter{'s' if n != 1 else ''}" for n in allowed)


def _number(rule: str, value: str, what: str) -> str:
    """Check one numeric parameter and return it in canonical form (no leading zeros)."""
    if not (value.isascii() and value.isdigit()):
        raise MaskError(
            f"mask {rule!r}: {what} must be a whole number from 0 to {_MAX_PARAM}, got {value!r}",
            rule=rule,
        )
    number = int(value)
    if number > _MAX_PARAM:
        raise MaskError(
            f"mask {rule!r}: {what} must be a whole number from 0 to {_MAX_PARAM}, got {number}",
            rule=rule,
        )
    return str(number)


def _validated(rule: str, params: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Check a rule and its parameters; return them in canonical form."""
    if not isinstance(rule, str) or not isinstance(params, tuple):
        raise MaskError("a mask is a rule name and a tuple of parameters")
    if not all(isinstance(p, str) for p in params):
        raise MaskError(f"mask {rule!r}: parameters must be strings", rule=rule)
    name = rule.strip().lower()
    if name not in KNOWN_RULES:
        shown = rule if rule.strip() else "(empty)"
        raise MaskError(
            f"unknown mask rule {shown!r}; known rules: {_known_rules_text()}", rule=rule
        )
    if name == "keep":
        _check_count(name, params, (2,), "keep:N:M, for example keep:6:4")
        first = _number(name, params[0], "N (characters kept at the start)")
        last = _number(name, params[1], "M (characters kept at the end)")
        return name, (first, last)
    if name == "replace":
        _check_count(name, params, (0, 1), "replace or replace:TEXT")
        if params and len(params[0]) > _MAX_REPLACE_TEXT:
            raise MaskError(
                f"mask 'replace': TEXT is {len(params[0])} characters long; "
                f"the limit is {_MAX_REPLACE_TEXT}",
                rule=name,
            )
        return name, params
    _check_count(name, params, (0,), name)
    return name, ()


@dataclass(frozen=True)
class MaskSpec:
    """A checked mask rule with its parameters, for example ``keep`` with ``("6", "4")``.

    Building one checks it, so a ``MaskSpec`` always holds a valid rule; the
    rule name and numbers are kept in canonical form (lower case, no leading
    zeros), so ``str(spec)`` is the same for equal masks.
    """

    rule: str
    params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        rule, params = _validated(self.rule, self.params)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "params", params)

    def __str__(self) -> str:
        """The canonical spec string; :func:`parse_mask` reads it back unchanged."""
        return ":".join((self.rule, *self.params))

    def describe(self) -> str:
        """Plain text for the field's doc in the consumer's view schema."""
        if self.rule == "keep":
            first, last = self.params
            what = f"keep first {first} and last {last} characters"
        elif self.rule == "replace":
            text = self.params[0] if self.params else _DEFAULT_REPLACEMENT
            what = f"replaced by {text!r}"
        elif self.rule == "hash":
            what = "keyed hash, stable for this consumer, not comparable between consumers"
        elif self.rule == "year":
            what = "year only"
        else:
            what = "first character of the name only"
        return f"masked: {what} ({self})"


def parse_mask(spec: str) -> MaskSpec:
    """Read a spec string such as ``keep:6:4``, ``hash`` or ``replace:已隐藏``.

    Raises :class:`MaskError` for an unknown rule (listing the known ones) or
    parameters the rule does not accept.
    """
    if not isinstance(spec, str):
        raise MaskError(f"a mask spec must be text, got {type(spec).__name__}")
    return _parse_text(spec)


@functools.lru_cache(maxsize=4096)
def _parse_text(spec: str) -> MaskSpec:
    """:func:`parse_mask` of a string, remembered: a recompile of 3,600 grants reads the same
    few specs thousands of times (a ``MaskSpec`` is frozen, so one is shared safely)."""
    text = spec.strip()
    if not text:
        raise MaskError(f"the mask spec is empty; known rules: {_known_rules_text()}")
    rule, sep, rest = text.partition(":")
    if rule.strip().lower() == "replace":
        # The replacement text is everything after the first colon, colons included.
        return MaskSpec(rule, (rest,) if sep else ())
    return MaskSpec(rule, tuple(rest.split(":")) if sep else ())


def _type_text(avro_type: Any) -> str:
    """Short human name of an Avro type, for messages."""
    nullable = isinstance(avro_type, list) and "null" in avro_type
    t = non_null_type(avro_type)
    if isinstance(t, list):
        name = "union of " + ", ".join(_type_text(b) for b in t)
    elif isinstance(t, dict):
        lt = t.get("logicalType")
        name = str(lt) if lt else str(t.get("type"))
    else:
        name = str(t)
    return f"nullable {name}" if nullable and not isinstance(t, list) else name


def check_applicable(spec: MaskSpec, avro_type: Any, field: str) -> None:
    """Check that the rule of ``spec`` suits a field of Avro type ``avro_type``.

    ``avro_type`` is the field's type as written in the schema: a primitive
    name, a dict (logical types, enums, records, ...) or a nullable union
    ``["null", T]``. ``replace`` and ``hash`` suit every type; ``year`` needs
    a date or timestamp; ``surname`` a string; ``keep`` a string, number,
    enum, decimal, date or timestamp. Raises :class:`MaskError` naming the
    field otherwise.
    """
    rule = spec.rule
    if rule in ("replace", "hash"):
        return
    t = non_null_type(avro_type)
    base: Any = None
    logical: str | None = None
    if isinstance(t, dict):
        base = t.get("type")
        lt = t.get("logicalType")
        logical = str(lt) if lt else None
    elif isinstance(t, str):
        base = t
    if rule == "year":
        ok = logical in _DATE_TYPES
        needs = "a date or timestamp field"
    elif rule == "surname":
        ok = base == "string" and logical is None
        needs = "a string field"
    else:  # keep
        ok = logical in _KEEP_LOGICAL_TYPES or (logical is None and base in _KEEP_BASE_TYPES)
        needs = "a string, number, enum, decimal, date or timestamp field"
    if not ok:
        raise MaskError(
            f"field {field!r}: mask {str(spec)!r} cannot be applied to a field of type "
            f"{_type_text(avro_type)}; {rule!r} needs {needs}",
            field=field,
            rule=rule,
        )


def consumer_key(master_secret: bytes, consumer: str, resource: str) -> bytes:
    """Derive the ``hash`` mask key of one consumer for one resource.

    HMAC-SHA256 of the master secret over the consumer and resource names, so
    every consumer (and every resource) gets its own key and hash values
    cannot be compared between them. The master secret must be at least
    :data:`MIN_MASTER_SECRET_BYTES` bytes; it is what keeps hashed ID numbers
    from being found by trying every possible number.
    """
    if not isinstance(master_secret, bytes) or len(master_secret) < MIN_MASTER_SECRET_BYTES:
        raise MaskError(f"the mask master secret must be at least {MIN_MASTER_SECRET_BYTES} bytes")
    if not consumer or not resource:
        raise MaskError("a mask key needs both a consumer and a resource name")
    # JSON makes the message unambiguous whatever characters the names contain.
    message = json.dumps([_KEY_LABEL, consumer, resource], ensure_ascii=False)
    return hmac.new(master_secret, message.encode("utf-8"), hashlib.sha256).digest()


def _text(value: Any, rule: str) -> str:
    """The text a character-level mask works on, as the JSON form of the record shows it."""
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return str(to_jsonable(value))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool | bytes | bytearray | dict | list):
        raise MaskError(
            f"mask {rule!r} cannot be applied to a {type(value).__name__} value", rule=rule
        )
    return str(value)


def _hash_input(value: Any) -> bytes:
    """Bytes a ``hash`` mask hashes: bytes as they are, scalars as text, the rest as JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, dict | list):
        return json.dumps(
            to_jsonable(value), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode("utf-8")
    return _text(value, "hash").encode("utf-8")


def _compile_keep(first: int, last: int) -> Callable[[Any], str | None]:
    kept = first + last

    def keep(value: Any) -> str | None:
        if value is None:
            return None
        text = value if type(value) is str else _text(value, "keep")
        n = len(text)
        if n <= kept:
            return "*" * n
        return text[:first] + "*" * (n - kept) + text[n - last :]

    return keep


def _compile_replace(replacement: str) -> Callable[[Any], str | None]:
    def replace(value: Any) -> str | None:
        return None if value is None else replacement

    return replace


def _compile_hash(key: bytes) -> Callable[[Any], str | None]:
    if not isinstance(key, bytes) or not key:
        raise MaskError("mask 'hash' needs a consumer key (see consumer_key())", rule="hash")
    base = hmac.new(key, digestmod=hashlib.sha256)

    def hash_mask(value: Any) -> str | None:
        if value is None:
            return None
        mac = base.copy()
        mac.update(value.encode("utf-8") if type(value) is str else _hash_input(value))
        return mac.hexdigest()[:HASH_HEX_CHARS]

    return hash_mask


def _year(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(CHINA_TZ)
        return f"{value.year:04d}"
    if isinstance(value, dt.date):
        return f"{value.year:04d}"
    raise MaskError(
        f"mask 'year' needs a date or timestamp value, got {type(value).__name__}", rule="year"
    )


def _surname(value: Any) -> str | None:
    if value is None:
        return None
    text = (value if type(value) is str else _text(value, "surname")).strip()
    return text[:1] + "*" * (len(text) - 1) if text else ""


def compile_mask(spec: MaskSpec, consumer_key: bytes) -> Callable[[Any], str | None]:
    """Return the function that masks one value of a field.

    ``consumer_key`` is the consumer's key from :func:`consumer_key`; only
    ``hash`` uses it. The function returns a string, or ``None`` for ``None``.
    It raises :class:`MaskError` only for a value of a type
    :func:`check_applicable` would have refused, so an unexpected value is
    never delivered unmasked.
    """
    rule = spec.rule
    if rule == "keep":
        return _compile_keep(int(spec.params[0]), int(spec.params[1]))
    if rule == "replace":
        return _compile_replace(spec.params[0] if spec.params else _DEFAULT_REPLACEMENT)
    if rule == "hash":
        return _compile_hash(consumer_key)
    if rule == "year":
        return _year
    if rule == "surname":
        return _surname
    raise MaskError(f"unknown mask rule {rule!r}; known rules: {_known_rules_text()}", rule=rule)

"""Row filters: which records of a resource a consumer may receive.

A provider may attach a row filter to a grant. It is a CEL expression (the
Common Expression Language of Kubernetes, Envoy and Confluent data contracts)
over the fields of the record, for example::

    region_code.startsWith("3301") && birth_date >= "2020-01-01"

A record is delivered only if the filter gives ``true`` for it. The filter is
checked and compiled once, when the grant is made (:func:`compile_filter`);
the router then calls :meth:`RowFilter.matches` for every record. CEL is
evaluated by the Rust core of the ``common-expression-language`` package;
nothing a department writes is ever run as Python. The most common filters
(comparisons of fields with literals, joined by ``&&`` or by ``||``) are compared
in Python with exactly CEL's result, at a tenth of the cost
(:mod:`exchange.enforce.rowfilter_fast`).

How field values look to CEL
----------------------------

Avro values in Python include dates, timestamps and decimals that CEL does
not have. Only the fields a filter names are converted, like this:

=========================  ==========================  ==========================================
Avro type                  CEL value                   Example filter
=========================  ==========================  ==========================================
string, enum, uuid         string                      ``region_code.startsWith("3301")``
int, long                  int                         ``household_size >= 3``
float, double              double                      ``score > 59.5``
boolean                    bool                        ``is_resident``
null (nullable field)      null                        ``death_date == null``
date                       string ``"YYYY-MM-DD"``     ``birth_date >= "2020-01-01"``,
                                                       ``birth_date.startsWith("1990")``
timestamp-millis/micros    timestamp                   ``registered_at >=
                                                       timestamp("2026-01-01T00:00:00+08:00")``
time-millis/micros         string ``"HH:MM:SS"``       ``opened_at < "09:00:00"``
decimal                    double                      ``amount > 1000``, ``amount == 1234.5``
bytes, fixed               bytes                       ``size(photo) > 0``
array                      list                        ``"A" in tags``
map, record                map                         ``address.city == "杭州市"``
=========================  ==========================  ==========================================

* Dates are ISO strings, so ordinary string comparison orders them correctly
  (CEL has no date type). To compare a date with a timestamp, convert it:
  ``timestamp(birth_date + "T00:00:00+08:00")``.
* Timestamps keep their instant; compare them with ``timestamp("...")``
  written with an explicit offset. The ``getFullYear()``-style accessors work
  in UTC only (this CEL library takes no time zone argument), so compare with
  a timestamp instead of asking for the year. A timestamp without a time zone
  (``local-timestamp``) is read as UTC, as in the JSON form of records.
* Decimals become doubles so numeric comparisons work (CEL compares int and
  double with each other: ``amount > 1000`` is fine). A double carries about
  15 significant digits, which is ample for filtering; do not filter on
  exact equality of amounts with more digits than that.

Fail closed
-----------

A record for which the filter does not clearly give ``true`` is **not**
delivered. That covers a filter that gives anything but a boolean, and a
filter that fails on the record: comparing a null field (``age > 18`` where
``age`` is null), a type mismatch, an arithmetic overflow, a bad regular
expression in ``matches``, or a field missing from the record. A filter that
means to let nulls through must say so: ``age == null || age > 18``.

Limits
------

:func:`compile_filter` refuses, with the reason:

* an empty filter, or one longer than :data:`MAX_FILTER_CHARS` characters
  (which also bounds how deeply expressions nest; deeper nesting could
  exhaust the evaluator's stack);
* a filter that does not parse (the CEL parser's message is included; it also
  refuses parentheses nested more than 96 deep);
* a name that is not a field of the resource (the known fields are listed);
* a function outside the CEL standard library this package provides
  (see :data:`ALLOWED_FUNCTIONS`): no ``__import__``, no custom functions;
* more than one comprehension macro (``all``, ``exists``, ``exists_one``,
  ``map``, ``filter``): nested or chained comprehensions can take time or
  memory exponential in the filter's length (for example repeatedly doubling
  a string), which would stall the router for every consumer. One
  comprehension, such as ``addresses.exists(a, a.city == "杭州市")``, is
  allowed. The check is on the filter's text, so a string literal that looks
  like a macro call also counts;
* a filter that uses no field and does not give ``true`` or ``false``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exchange.enforce.rowfilter_fast import fast_matcher
from exchange.errors import ExchangeError

if TYPE_CHECKING:
    import cel

__all__ = [
    "ALLOWED_FUNCTIONS",
    "MAX_FILTER_CHARS",
    "FilterError",
    "RowFilter",
    "compile_filter",
    "to_cel",
]

MAX_FILTER_CHARS = 2000
"""Longest row filter accepted, in characters."""

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    {
        # operators, as the CEL parser names them
        "!_",
        "-_",
        "@in",
        "@not_strictly_false",
        "_!=_",
        "_%_",
        "_&&_",
        "_*_",
        "_+_",
        "_-_",
        "_/_",
        "_<=_",
        "_<_",
        "_==_",
        "_>=_",
        "_>_",
        "_?_:_",
        "_[_]",
        "_||_",
        # standard functions the library implements
        "bytes",
        "contains",
        "double",
        "duration",
        "dyn",
        "endsWith",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getMonth",
        "getSeconds",
        "int",
        "matches",
        "size",
        "startsWith",
        "string",
        "timestamp",
        "type",
        "uint",
    }
)
"""Functions and operators a row filter may use: the CEL standard library."""

# Type names CEL lets an expression mention, as in ``type(x) == string``.
_TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "dyn", "int", "list", "map", "null_type", "string", "type", "uint"}
)

# A comprehension macro call, and the name of the variable it binds. Matched
# on the raw text: strings and comments can only add matches, never hide one.
_MACRO = re.compile(
    r"\b(all|exists_one|exists|map|filter)(?:\s|//[^\n]*)*\(\s*([A-Za-z_][A-Za-z0-9_]*)?",
    re.ASCII,
)


class FilterError(ExchangeError):
    """A row filter was refused; the message says why."""

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message, expression=expression)
        self.expression = expression


# ---------------------------------------------------------------- conversion


def _convert_list(value: list[Any]) -> list[Any]:
    return [to_cel(v) for v in value]


def _convert_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    return {k: to_cel(v) for k, v in value.items()}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# Types that need converting; every other type (str, int, float, bool, None,
# bytes, aware datetime) goes to CEL as it is.
_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    dt.date: dt.date.isoformat,
    dt.datetime: _aware,
    dt.time: dt.time.isoformat,
    decimal.Decimal: float,
    uuid.UUID: str,
    list: _convert_list,
    dict: _convert_dict,
    bytearray: bytes,
    tuple: _convert_list,
}


def to_cel(value: Any) -> Any:
    """The value a row filter sees for one Avro value (see the module doc)."""
    convert = _CONVERTERS.get(type(value))
    return value if convert is None else convert(value)


# ------------------------------------------------------------------ matching


def _make_matcher(
    program: cel.Program, names: tuple[str, ...]
) -> Callable[[Mapping[str, Any]], bool]:
    """A closure that evaluates ``program`` on a record, converting only ``names``."""
    execute = program.execute
    converters = _CONVERTERS.get

    if not names:
        constant = _evaluate_constant(program)

        def match_constant(record: Mapping[str, Any]) -> bool:
            return constant

        return match_constant

    if len(names) == 1:
        (name,) = names

        def match_one(record: Mapping[str, Any]) -> bool:
            try:
                value = record[name]
                convert = converters(type(value))
                if convert is not None:
                    value = convert(value)
                return execute({name: value}) is True
            except Exception:
                return False
            except BaseException as exc:  # a panic in the Rust core is a BaseException
                if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                    raise
                return False

        return match_one

    def match(record: Mapping[str, Any]) -> bool:
        try:
            context = {}
            for name in names:
                value = record[name]
                convert = converters(type(value))
                context[name] = value if convert is None else convert(value)
            return execute(context) is True
        except Exception:
            return False
        except BaseException as exc:  # a panic in the Rust core is a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            return False

    return match


def _evaluate_constant(program: cel.Program) -> bool:
    try:
        result = program.execute({})
    except Exception as exc:
        raise FilterError(
            f"the row filter uses no field and fails: {exc}", expression=program.source
        ) from None
    if not isinstance(result, bool):
        raise FilterError(
            f"the row filter uses no field and gives {result!r}, not true or false",
            expression=program.source,
        )
    return result


@dataclass(frozen=True)
class RowFilter:
    """A compiled row filter; build one with :func:`compile_filter`.

    ``variables`` are the fields the filter reads. :meth:`matches` is the
    per-record test; it never raises.
    """

    expression: str
    variables: frozenset[str]
    _match: Callable[[Mapping[str, Any]], bool] = field(repr=False, compare=False)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (Python form of an Avro record) may be delivered.

        True only if the filter evaluates to ``true``; an error or a
        non-boolean result counts as not matching (fail closed).
        """
        return self._match(record)


# ----------------------------------------------------------------- compiling


_MAX_COMPILE_MESSAGE = 400


def _compile_message(expression: str, exc: Exception) -> str:
    message = str(exc)
    prefix = f"Failed to parse expression '{expression}': "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    message = message.strip()
    if len(message) > _MAX_COMPILE_MESSAGE:
        # the parser repeats the whole filter under its message, with a caret: for a
        # long one (a hostile one, say) keep the line that says what and where
        first = message.splitlines()[0] if message else message
        message = first[:_MAX_COMPILE_MESSAGE] + " (the filter is not repeated here: too long)"
    return message


def _plural(names: Collection[str], one: str, many: str) -> str:
    return one if len(names) == 1 else many


def compile_filter(expression: str, field_names: Collection[str]) -> RowFilter:
    """Check and compile a row filter over a resource with fields ``field_names``.

    Raises :class:`FilterError` with the reason if the filter is empty, too
    long, does not parse, names something that is not a field, calls a
    function CEL does not provide, uses more than one comprehension macro, or
    uses no field and does not give a boolean. See the module doc for how
    field values look to the filter.

    Compiled filters are cached: replaying thousands of grants that share a
    few filters (a region, a date range) compiles each of them once.
    """
    if not isinstance(expression, str):
        raise FilterError(f"a row filter must be text, got {type(expression).__name__}")
    return _compile(expression, frozenset(field_names))


@functools.lru_cache(maxsize=4096)
def _compile(expression: str, field_names: frozenset[str]) -> RowFilter:
    if not isinstance(expression, str):
        raise FilterError(f"a row filter must be text, got {type(expression).__name__}")
    if not expression.strip():
        raise FilterError("the row filter is empty", expression=expression)
    if len(expression) > MAX_FILTER_CHARS:
        raise FilterError(
            f"the row filter is {len(expression)} characters long; the limit is {MAX_FILTER_CHARS}",
            expression=expression,
        )
    try:
        import cel  # imported on first use: it pulls in a REPL toolkit costing ~0.2 s

        program = cel.compile(expression)
    except Exception as exc:  # the library raises ValueError, be generous
        raise FilterError(
            f"the row filter does not compile: {_compile_message(expression, exc)}",
            expression=expression,
        ) from None

    fields = frozenset(field_names)
    macros = list(_MACRO.finditer(expression))
    if len(macros) > 1:
        used = ", ".join(sorted({m.group(1) for m in macros}))
        raise FilterError(
            f"the row filter uses {len(macros)} comprehension macros ({used}); at most one "
            "is allowed, because nested or chained comprehensions can take unbounded time. "
            "For membership use 'in', for example: \"A\" in tags",
            expression=expression,
        )
    bound = {m.group(2) for m in macros if m.group(2)}
    shadowing = sorted(bound & fields)
    if shadowing:
        raise FilterError(
            f"the row filter's comprehension variable {shadowing[0]!r} is also the name of a "
            "field; choose another name",
            expression=expression,
        )

    unknown_functions = sorted(set(program.functions()) - ALLOWED_FUNCTIONS)
    if unknown_functions:
        raise FilterError(
            f"the row filter calls {', '.join(unknown_functions)}, "
            f"which {_plural(unknown_functions, 'is not a function', 'are not functions')} "
            "of CEL's standard library here; available: "
            + ", ".join(sorted(f for f in ALLOWED_FUNCTIONS if f[0].isalpha())),
            expression=expression,
        )

    names = set(program.variables()) - bound - (_TYPE_NAMES - fields)
    unknown = sorted(names - fields)
    if unknown:
        raise FilterError(
            f"the row filter names {', '.join(repr(n) for n in unknown)}, which "
            f"{_plural(unknown, 'is not a field', 'are not fields')} of the resource; "
            f"known fields: {', '.join(sorted(fields)) or '(none)'}",
            expression=expression,
        )
    variables = frozenset(names)
    match = _make_matcher(program, tuple(sorted(variables)))
    # the common filters (comparisons with literals) are evaluated in Python, CEL's result
    fast = fast_matcher(expression, fields, _CONVERTERS.get, match)
    return RowFilter(expression, variables, match if fast is None else fast)

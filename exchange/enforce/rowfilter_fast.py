"""The common row filters, evaluated in Python with exactly CEL's result.

Most row filters a provider attaches are a comparison of one field with a literal, or a
few of them joined by ``&&`` (or by ``||``): ``registered_capital > 5000000``,
``region_code == "330100"``, ``birth_date >= "2000-01-01" && birth_date < "2010-01-01"``,
``death_date == null``. Asking CEL's Rust core for each record costs a call across
the language boundary and a dictionary built per record (about 3 µs; the comparison
itself is a tenth of that). :func:`fast_matcher` recognises these filters from their
text and compares in Python, where the two languages agree exactly:

* a number with a number: an int with an int; a double with a double or with an int
  whose magnitude is at most 2**53 (beyond it CEL rounds the int to a double, Python
  does not); never NaN (CEL refuses to order NaN), never a bool (a bool is not a number
  in CEL);
* a string with a string (CEL orders strings by code point, as Python does);
* anything with ``null``, by ``==`` and ``!=`` only (CEL: a value of another type is
  simply not equal).

For any other value the record (one whole record, not one comparison) goes to the CEL
program, so the result is always CEL's; the property test in
``tests/unit/test_rowfilter_fast.py`` checks that on random filters and values. ``&&``
and ``||`` short-circuit as CEL's do (``false && error`` is false, ``true || error``
is true). The filter has already been compiled and checked by CEL
(:mod:`exchange.enforce.rowfilter`): this module only decides how it is evaluated.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

#: beyond this magnitude an int compared with a double is rounded by CEL
EXACT_IN_DOUBLE = 2**53
INT64 = 2**63

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_OP = r"==|!=|<=|>=|<|>"
_INT = r"-?(?:0|[1-9][0-9]*)"
_DOUBLE = r"-?[0-9]+(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)"
_STRING = r"\"[^\"\\\n\r]*\"|'[^'\\\n\r]*'"
_LITERAL = rf"null|{_DOUBLE}|{_INT}|{_STRING}"
_CLAUSE = rf"\s*({_IDENT})\s*({_OP})\s*({_LITERAL})\s*"
_CLAUSE_RE = re.compile(_CLAUSE)
_AND_RE = re.compile(rf"{_CLAUSE}(?:&&{_CLAUSE})*")
_OR_RE = re.compile(rf"{_CLAUSE}(?:\|\|{_CLAUSE})*")
_RESERVED = frozenset({"null", "true", "false", "in", "as", "break", "const", "continue"})

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

#: a comparison's outcome for one value: True, False, or None (not decided here: CEL's)
Compare = Callable[[Any], bool | None]
Convert = Callable[[Any], Any]


def _literal(text: str) -> Any:
    if text == "null":
        return None
    if text[0] in "\"'":
        return text[1:-1]
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _compare(op: str, literal: Any) -> Compare | None:
    """The comparison of a (converted) field value with ``literal`` by ``op``."""
    test = _OPS[op]
    if literal is None:
        if op not in ("==", "!="):
            return None  # ordering null is an error in CEL: leave the filter to CEL
        equal = op == "=="
        return lambda value: (value is None) is equal
    if type(literal) is str:
        return lambda value: test(value, literal) if type(value) is str else None
    if type(literal) is int:
        if not -INT64 <= literal < INT64:
            return None
        literal_exact = -EXACT_IN_DOUBLE <= literal <= EXACT_IN_DOUBLE

        def with_int(value: Any) -> bool | None:
            kind = type(value)
            if kind is int:
                return test(value, literal)
            if kind is float and literal_exact and not math.isnan(value):
                return test(value, literal)
            return None

        return with_int
    if math.isnan(literal) or math.isinf(literal):
        return None

    def with_double(value: Any) -> bool | None:
        kind = type(value)
        if kind is float:
            return None if math.isnan(value) else test(value, literal)
        if kind is int and -EXACT_IN_DOUBLE <= value <= EXACT_IN_DOUBLE:
            return test(value, literal)
        return None

    return with_double


def fast_matcher(
    expression: str,
    fields: frozenset[str],
    convert: Callable[[type], Convert | None],
    cel_match: Callable[[Mapping[str, Any]], bool],
) -> Callable[[Mapping[str, Any]], bool] | None:
    """A Python matcher giving ``cel_match``'s result for ``expression``, or None if the
    filter is not one this module evaluates.

    ``convert`` gives the converter of a value's type (as CEL sees values, e.g. a date
    as its ISO string), None for a value CEL takes as it is; ``cel_match`` is the CEL
    program's matcher, asked for any record with a value this module does not compare.
    """
    if _AND_RE.fullmatch(expression):
        conjunction = True
    elif _OR_RE.fullmatch(expression):
        conjunction = False
    else:
        return None
    clauses: list[tuple[str, Compare]] = []
    for name, op, text in _CLAUSE_RE.findall(expression):
        compare = _compare(op, _literal(text))
        if name in _RESERVED or name not in fields or compare is None:
            return None
        clauses.append((name, compare))
    # with one operator kind, the first clause that decides the whole decides it
    decisive = not conjunction

    def match(record: Mapping[str, Any]) -> bool:
        undecided = False
        try:
            for name, compare in clauses:
                value = record[name]
                to_cel = convert(type(value))
                outcome = compare(value if to_cel is None else to_cel(value))
                if outcome is None:
                    undecided = True
                elif outcome is decisive:
                    return decisive
        except Exception:
            return cel_match(record)
        return cel_match(record) if undecided else not decisive

    return match

"""JSON form of Avro records, for files, the CLI and department systems.

Avro values in Python use ``date``, ``datetime`` and ``Decimal``; JSON has
none of them. This module converts both ways, guided by the schema:

=====================  ===============================  =========================
Avro type              JSON form                        Python form
=====================  ===============================  =========================
date                   ``"2026-11-26"``                 ``datetime.date``
timestamp-millis       ``"2026-11-26T08:30:00+08:00"``  aware ``datetime``
decimal                ``"1234.50"`` (string)           ``decimal.Decimal``
bytes / fixed          base64 string                    ``bytes``
=====================  ===============================  =========================

:func:`from_json` checks every value and raises :class:`FieldProblem` naming
the field path, so a bad line of a file is reported precisely.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Callable
from typing import Any

from exchange.beijing import CHINA_TZ as CHINA_TZ

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class FieldProblem(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _named_types(schema: Any, out: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """Named types of ``schema`` by short and full name.

    A name without a dot takes its own ``namespace`` or, failing that, the
    enclosing one (Avro's rule), so an enum declared inside a record of
    ``gov.exchange.health`` is also found as ``gov.exchange.health.Gender``.
    """
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed") and "name" in schema:
            name = str(schema["name"])
            if "." in name:
                full = name
                namespace = name.rsplit(".", 1)[0]
            else:
                namespace = schema.get("namespace", namespace)
                full = f"{namespace}.{name}" if namespace else name
            out[full.rsplit(".", 1)[-1]] = schema
            out[full] = schema
        for f in schema.get("fields", []):
            _named_types(f["type"], out, namespace)
        for k in ("items", "values"):
            if k in schema:
                _named_types(schema[k], out, namespace)
    elif isinstance(schema, list):
        for s in schema:
            _named_types(s, out, namespace)
    return out


def from_json(schema: dict[str, Any], data: Any) -> dict[str, Any]:
    """Convert a JSON object to the Python form of a record of ``schema``; strict."""
    if not isinstance(data, dict):
        raise FieldProblem("record", f"expected a JSON object, got {type(data).__name__}")
    return _from(schema, data, "", _named_types(schema, {}))  # type: ignore[no-any-return]


def _from(t: Any, v: Any, path: str, named: dict[str, Any]) -> Any:
    """The Python form of JSON value ``v`` of Avro type ``t``; a converter per type."""
    if isinstance(t, str) and t in named:
        t = named[t]
    if isinstance(t, list):
        return _union(t, v, path, named)
    if v is None and "null" not in (t, _base(t)):
        raise FieldProblem(path, "is null but the field is not nullable")
    if isinstance(t, dict):
        lt = t.get("logicalType")
        base = t.get("type")
        convert = (_LOGICAL.get(lt) if isinstance(lt, str) else None) or (
            _COMPLEX.get(base) if isinstance(base, str) else None
        )
        if convert is None:
            return _from(base, v, path, named)
        return convert(t, v, path, named)
    convert = _PRIMITIVE.get(t)
    if convert is None:
        raise FieldProblem(path, f"unsupported Avro type {t!r}")
    return convert(t, v, path, named)


def _union(t: list[Any], v: Any, path: str, named: dict[str, Any]) -> Any:
    """The first non-null branch that takes ``v``; the problems of all of them otherwise."""
    if v is None:
        if "null" in t:
            return None
        raise FieldProblem(path, "is null but the field is not nullable")
    errors = []
    for branch in t:
        if branch == "null":
            continue
        try:
            return _from(branch, v, path, named)
        except FieldProblem as exc:
            errors.append(exc.message)
    raise FieldProblem(path, "; ".join(errors))


# -- logical types ---------------------------------------------------------------


def _date(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> dt.date:
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise FieldProblem(path, f"expected a date 'YYYY-MM-DD', got {v!r}")


def _timestamp(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> dt.datetime:
    if isinstance(v, str):
        try:
            ts = dt.datetime.fromisoformat(v)
        except ValueError:
            ts = None
        if ts is not None:
            return ts if ts.tzinfo else ts.replace(tzinfo=CHINA_TZ)
    raise FieldProblem(path, f"expected an ISO-8601 timestamp, got {v!r}")


def _decimal(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> decimal.Decimal:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise FieldProblem(path, f"expected a decimal as a string, got {v!r}")
    try:
        d = decimal.Decimal(str(v))
    except decimal.InvalidOperation:
        raise FieldProblem(path, f"expected a decimal number, got {v!r}") from None
    scale = int(t.get("scale", 0))
    precision = int(t["precision"])
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale:
        raise FieldProblem(path, f"{v} has more than {scale} decimal places")
    if len(d.quantize(decimal.Decimal(1).scaleb(-scale)).as_tuple().digits) > precision:
        raise FieldProblem(path, f"{v} has more than {precision} digits")
    return d


# -- complex types -----------------------------------------------------------------


def _record(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise FieldProblem(path, f"expected an object, got {type(v).__name__}")
    known = {f["name"] for f in t["fields"]}
    extra = sorted(set(v) - known)
    if extra:
        raise FieldProblem(
            f"{path}.{extra[0]}" if path else extra[0], "is not a field of the schema"
        )
    out = {}
    for f in t["fields"]:
        fpath = f"{path}.{f['name']}" if path else f["name"]
        if f["name"] not in v:
            if "default" in f:
                out[f["name"]] = f["default"]
                continue
            raise FieldProblem(fpath, "is missing")
        out[f["name"]] = _from(f["type"], v[f["name"]], fpath, named)
    return out


def _enum(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> Any:
    if v not in t["symbols"]:
        raise FieldProblem(path, f"{v!r} is not one of {t['symbols']}")
    return v


def _array(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> list[Any]:
    if not isinstance(v, list):
        raise FieldProblem(path, "expected a list")
    return [_from(t["items"], x, f"{path}[{i}]", named) for i, x in enumerate(v)]


def _map(t: dict[str, Any], v: Any, path: str, named: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise FieldProblem(path, "expected an object")
    return {k: _from(t["values"], x, f"{path}.{k}", named) for k, x in v.items()}


def _fixed(t: Any, v: Any, path: str, named: dict[str, Any]) -> bytes:
    return _bytes(v, path)


# -- primitive types ---------------------------------------------------------------


def _null(t: str, v: Any, path: str, named: dict[str, Any]) -> None:
    if v is not None:
        raise FieldProblem(path, "expected null")


def _boolean(t: str, v: Any, path: str, named: dict[str, Any]) -> bool:
    if not isinstance(v, bool):
        raise FieldProblem(path, f"expected true or false, got {v!r}")
    return v


def _integer(t: str, v: Any, path: str, named: dict[str, Any]) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FieldProblem(path, f"expected an integer, got {v!r}")
    lo, hi = _INT_RANGE[t]
    if not lo <= v <= hi:
        raise FieldProblem(path, f"{v} does not fit in an Avro {t}")
    return v


def _floating(t: str, v: Any, path: str, named: dict[str, Any]) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FieldProblem(path, f"expected a number, got {v!r}")
    return float(v)


def _string(t: str, v: Any, path: str, named: dict[str, Any]) -> str:
    if not isinstance(v, str):
        raise FieldProblem(path, f"expected a string, got {type(v).__name__}")
    return v


_Convert = Callable[[Any, Any, str, dict[str, Any]], Any]
_LOGICAL: dict[str, _Convert] = {
    "date": _date,
    "timestamp-millis": _timestamp,
    "timestamp-micros": _timestamp,
    "decimal": _decimal,
}
_COMPLEX: dict[str, _Convert] = {
    "record": _record,
    "enum": _enum,
    "array": _array,
    "map": _map,
    "fixed": _fixed,
}
_PRIMITIVE: dict[Any, _Convert] = {
    "null": _null,
    "boolean": _boolean,
    "int": _integer,
    "long": _integer,
    "float": _floating,
    "double": _floating,
    "string": _string,
    "bytes": _fixed,
}


def _base(t: Any) -> Any:
    return t.get("type") if isinstance(t, dict) else None


def _bytes(v: Any, path: str) -> bytes:
    if not isinstance(v, str):
        raise FieldProblem(path, "expected base64 text")
    try:
        return base64.b64decode(v, validate=True)
    except ValueError:
        raise FieldProblem(path, "is not valid base64") from None


def to_jsonable(value: Any) -> Any:
    """Python form of Avro data to plain JSON types (dates ISO, decimals as strings)."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(CHINA_TZ).isoformat(timespec="milliseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _jsonable_scalar(value: Any) -> Any:
    """What :func:`to_jsonable` makes of a value JSON has no type for (TypeError: none)."""
    if isinstance(value, dt.date | decimal.Decimal | bytes):
        return to_jsonable(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: Starlette's JSONResponse's options (compact, UTF-8 kept, no NaN), made once, with the
#: conversions of to_jsonable done by the encoder as it meets the values
_ANSWER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_jsonable_scalar
)


def answer_json(value: Any) -> bytes:
    """The body Starlette's ``JSONResponse(to_jsonable(value))`` has, in one pass.

    For an answer served thousands of times a second (the gateway's record by key): no
    copy of the record made by :func:`to_jsonable` first, and no JSON encoder built per
    answer (``json.dumps`` with options builds one per call)."""
    return _ANSWER.encode(value).encode("utf-8")


def dumps(record: dict[str, Any]) -> str:
    """One JSON Lines line for a record (UTF-8, Chinese kept readable)."""
    return json.dumps(to_jsonable(record), ensure_ascii=False, separators=(",", ":"))

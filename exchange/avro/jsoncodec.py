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
    if isinstance(t, str) and t in named:
        t = named[t]
    if v is None and not isinstance(t, list) and "null" not in (t, _base(t)):
        raise FieldProblem(path, "is null but the field is not nullable")
    if isinstance(t, list):
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
    if isinstance(t, dict):
        lt = t.get("logicalType")
        base = t.get("type")
        if lt == "date":
            if isinstance(v, str):
                try:
                    return dt.date.fromisoformat(v)
                except ValueError:
                    pass
            raise FieldProblem(path, f"expected a date 'YYYY-MM-DD', got {v!r}")
        if lt in ("timestamp-millis", "timestamp-micros"):
            if isinstance(v, str):
                try:
                    ts = dt.datetime.fromisoformat(v)
                except ValueError:
                    ts = None
                if ts is not None:
                    return ts if ts.tzinfo else ts.replace(tzinfo=CHINA_TZ)
            raise FieldProblem(path, f"expected an ISO-8601 timestamp, got {v!r}")
        if lt == "decimal":
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
        if base == "record":
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
        if base == "enum":
            if v not in t["symbols"]:
                raise FieldProblem(path, f"{v!r} is not one of {t['symbols']}")
            return v
        if base == "array":
            if not isinstance(v, list):
                raise FieldProblem(path, "expected a list")
            return [_from(t["items"], x, f"{path}[{i}]", named) for i, x in enumerate(v)]
        if base == "map":
            if not isinstance(v, dict):
                raise FieldProblem(path, "expected an object")
            return {k: _from(t["values"], x, f"{path}.{k}", named) for k, x in v.items()}
        if base == "fixed":
            return _bytes(v, path)
        return _from(base, v, path, named)
    if t == "null":
        if v is not None:
            raise FieldProblem(path, "expected null")
        return None
    if t == "boolean":
        if not isinstance(v, bool):
            raise FieldProblem(path, f"expected true or false, got {v!r}")
        return v
    if t in ("int", "long"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise FieldProblem(path, f"expected an integer, got {v!r}")
        lo, hi = _INT_RANGE[t]
        if not lo <= v <= hi:
            raise FieldProblem(path, f"{v} does not fit in an Avro {t}")
        return v
    if t in ("float", "double"):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FieldProblem(path, f"expected a number, got {v!r}")
        return float(v)
    if t == "string":
        if not isinstance(v, str):
            raise FieldProblem(path, f"expected a string, got {type(v).__name__}")
        return v
    if t == "bytes":
        return _bytes(v, path)
    raise FieldProblem(path, f"unsupported Avro type {t!r}")


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


def dumps(record: dict[str, Any]) -> str:
    """One JSON Lines line for a record (UTF-8, Chinese kept readable)."""
    return json.dumps(to_jsonable(record), ensure_ascii=False, separators=(",", ":"))

"""Exception hierarchy: one root, a few meaningful subclasses carrying the facts."""

from __future__ import annotations

from typing import Any


class ExchangeError(Exception):
    """Root of every error the bus raises on purpose.

    ``retriable`` says whether trying the same thing again later can succeed
    (a broker that is briefly away) or not (a catalog that breaks a rule).
    """

    retriable = False

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.facts = {k: v for k, v in facts.items() if v is not None}

    def __str__(self) -> str:
        return self.message


class CatalogError(ExchangeError):
    """The catalog (政务信息资源目录) breaks a rule; names file, resource and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        resource: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if resource:
            where.append(f"resource {resource!r}")
        if field:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message, file=file, resource=resource, field=field, line=line)
        self.reason = message


class CatalogErrors(ExchangeError):
    """Several catalog errors found in one load; the whole load is rejected."""

    def __init__(self, errors: list[CatalogError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"catalog rejected, {len(errors)} error(s), nothing was applied:\n{lines}")


class SchemaError(ExchangeError):
    """An Avro schema does not parse, or a new version is not compatible."""


class RecordInvalid(ExchangeError):
    """A record does not match its resource schema; it was not sent."""

    def __init__(
        self, message: str, *, resource: str, field: str | None = None, line: int | None = None
    ) -> None:
        where = f"line {line}: " if line is not None else ""
        fld = f"field {field!r}: " if field else ""
        super().__init__(
            f"{where}resource {resource!r}: {fld}{message}",
            resource=resource,
            field=field,
            line=line,
        )
        self.reason = message


class UnknownResource(ExchangeError):
    """A command names a resource or department the catalog does not have."""


class PermissionDenied(ExchangeError):
    """The shared list or its approvals do not entitle the department to this."""

    def __init__(
        self,
        message: str,
        *,
        department: str | None = None,
        resource: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message, department=department, resource=resource, rule=rule)
        self.rule = rule


class CommandRefused(ExchangeError):
    """An application, approval, rejection or revocation was refused; nothing changed."""


class BrokerUnavailable(ExchangeError):
    """No Kafka broker could be reached or started."""

    retriable = True


class DecodeError(ExchangeError):
    """Bytes on a topic could not be decoded as a framed Avro record."""

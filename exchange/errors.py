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
    """A record cannot be published as it is; neither it nor the rest of its batch was sent.

    The message starts with where it is: the line of a file, or the record's
    index in the batch handed to the Python API (counted from 0).
    """

    def __init__(
        self,
        message: str,
        *,
        resource: str,
        field: str | None = None,
        line: int | None = None,
        index: int | None = None,
        **facts: Any,
    ) -> None:
        if line is not None:
            where = f"line {line}: "
        elif index is not None:
            where = f"record {index}: "
        else:
            where = ""
        fld = f"field {field!r}: " if field else ""
        super().__init__(
            f"{where}resource {resource!r}: {fld}{message}",
            resource=resource,
            field=field,
            line=line,
            index=index,
            **facts,
        )
        self.reason = message


class RecordTooLarge(RecordInvalid):
    """A record is larger than Kafka or the router takes (``exchange.bus.limits``).

    Facts: ``size`` (bytes), ``limit`` (bytes) and ``limit_by`` (what sets the
    limit), with the ``line`` or ``index`` of the record and its ``resource``.
    """

    def __init__(
        self,
        reason: str,
        *,
        resource: str,
        size: int,
        limit: int,
        limit_by: str,
        line: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(
            f"{reason}; nothing was sent",
            resource=resource,
            line=line,
            index=index,
            size=size,
            limit=limit,
            limit_by=limit_by,
        )
        self.reason = reason


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


class AccessRefused(ExchangeError):
    """The broker refused this principal an operation on a topic or group (Kafka ACLs)."""


class BrokerUnavailable(ExchangeError):
    """No Kafka broker could be reached or started."""

    retriable = True


class PublishIncomplete(BrokerUnavailable):
    """The broker failed part way through a publish: it acknowledged only some records.

    Those stay published (Kafka cannot take them back). Publishing the same
    records again is safe: they keep their record ids and readers drop duplicates.
    """

    def __init__(self, *, acknowledged: int, total: int, cause: BaseException) -> None:
        super().__init__(
            f"the broker acknowledged {acknowledged} of {total} records, then failed "
            f"({str(cause) or type(cause).__name__}); publish the same records again: those "
            "already on the bus keep their record ids and readers drop the duplicates",
            acknowledged=acknowledged,
            total=total,
        )


class DecodeError(ExchangeError):
    """Bytes on a topic could not be decoded as a framed Avro record."""


class ControlStateReset(ExchangeError):
    """The control topics went backwards (recreated, truncated, deleted) under a process
    that had read them: what it holds is not on the bus any more. A router pauses and
    rebuilds; a session refuses to act and must be started again."""

    def __init__(
        self, message: str, *, topic: str, partition: int, kind: str, had: str, found: str
    ) -> None:
        super().__init__(message, topic=topic, partition=partition, kind=kind, had=had, found=found)
        self.topic, self.partition, self.kind = topic, partition, kind
        self.had, self.found = had, found

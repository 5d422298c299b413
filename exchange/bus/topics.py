"""Topic names of the bus, in one place.

==============================  ==================================================
``gov.src.<provider>.<res>``    records published by the provider (source)
``gov.dlv.<consumer>.<res>``    the consumer's view, produced by the router
``gov.dlq.<res>``               source records the router could not decode
``gov.ctl.catalog``             catalog snapshots (departments, resources, shared list)
``gov.ctl.schemas``             every schema by id (resource, view and control records)
``gov.ctl.grants``              applications, approvals, rejections, revocations
``gov.ctl.book``                snapshots of the grant book, written by routers (compacted)
``gov.ctl.backfill``            backfill progress per view and partition, resync requests
                                (compacted, written by routers; exchange.router.backfill_state)
``gov.ctl.resync``              a department's requests for its full view again (compacted)
``gov.ctl.disputes``            data disputes (疑义), their answers and corrections
``gov.audit``                   the access log
==============================  ==================================================
"""

from __future__ import annotations

import re

CATALOG = "gov.ctl.catalog"
SCHEMAS = "gov.ctl.schemas"
GRANTS = "gov.ctl.grants"
BOOK = "gov.ctl.book"
BACKFILL = "gov.ctl.backfill"
RESYNC = "gov.ctl.resync"
DISPUTES = "gov.ctl.disputes"
AUDIT = "gov.audit"
CONTROL_TOPICS = (CATALOG, SCHEMAS, GRANTS, BOOK, BACKFILL, RESYNC, DISPUTES, AUDIT)
#: the routers' consumer group on GRANTS whose one member audits commands written without
#: a client (exchange.router.command_audit)
COMMAND_AUDIT_GROUP = "gov-exchange-command-audit"

SOURCE_PATTERN = r"^gov\.src\..*"
_SOURCE = re.compile(r"^gov\.src\.(?P<provider>[a-z][a-z0-9_]*)\.(?P<resource>[a-z][a-z0-9_]*)$")


def source(provider: str, resource: str) -> str:
    return f"gov.src.{provider}.{resource}"


def delivery(consumer: str, resource: str) -> str:
    return f"gov.dlv.{consumer}.{resource}"


def dead_letter(resource: str) -> str:
    return f"gov.dlq.{resource}"


def parse_source(topic: str) -> tuple[str, str] | None:
    """``(provider, resource)`` of a source topic, or None if it is not one."""
    m = _SOURCE.match(topic)
    return (m["provider"], m["resource"]) if m else None

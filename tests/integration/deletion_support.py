"""Helpers for the deletion tests (test_deletions, test_deletions_membership): not a test module.

Birth certificates of a test's own numbers, a database sink on the session's
PostgreSQL, reading audit entries until they are there, and the canary scan.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import yaml
from routing_support import SESSION_MS

from connectors import runner
from connectors.base import Connector
from connectors.config import load
from exchange.audit.entry import Action, AuditEntry
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.reader import Deletion
from exchange.dev import sample
from exchange.dev.databases import ThrowawayMariaDB, ThrowawayPostgres

BMC = "birth_medical_certificate"
ZJ = 'region_code.startsWith("33")'
CANARY = "金丝雀CANARY"


def pg(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def certificates(
    catalog: Catalog, prefix: str, n: int, *, region: str = "330106"
) -> list[dict[str, Any]]:
    recs = sample.generate(catalog.resources[BMC].schema_, n, seed=31)
    for i, rec in enumerate(recs):
        rec["certificate_no"] = f"{prefix}{i:04d}"
        rec["region_code"] = region
        rec["mother_name"] = f"{CANARY}{i}"
    return recs


async def sink(
    bus: Connection, tmp_path: Path, server: ThrowawayPostgres | ThrowawayMariaDB, **cfg: Any
) -> Connector:
    spec = {
        "name": "sink",
        "type": "db_sink",
        "database": {"url": server.url},
        "group": f"sink-{uuid.uuid4().hex[:8]}",
        "session_timeout_ms": SESSION_MS,
        **cfg,
    }
    path = tmp_path / "connectors.yaml"
    path.write_text(yaml.safe_dump({"connectors": [spec]}, allow_unicode=True))
    (c,) = await runner.build(load(path), bus, environ={}, only=["sink"])
    return c


async def step_until(c: Connector, done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out: {c.progress.line(c.name)}"
        await c.step()


async def audit_entries(
    bus: Connection, action: Action, done: Callable[[list[AuditEntry]], bool]
) -> list[AuditEntry]:
    """The audit entries of ``action``, read again until ``done`` holds for them."""
    deadline = time.monotonic() + 30
    while True:
        raw = await kafka.read_to_end(bus, topics.AUDIT)
        entries = [e for e in (AuditEntry.decode(r.value) for r in raw) if e.action is action]
        if done(entries):
            return entries
        assert time.monotonic() < deadline, f"no {action} entries as expected: {entries}"
        await asyncio.sleep(0.2)


def deletions(events: list[Any], keys: set[str]) -> dict[str, Deletion]:
    return {e.key: e for e in events if isinstance(e, Deletion) and e.key in keys}


def canary_free(entries: list[AuditEntry], *values: str) -> None:
    for entry in entries:
        text = json.dumps(entry.to_avro(), ensure_ascii=False, default=str)
        for value in values:
            assert value not in text, f"{value!r} in {entry.action} entry {entry.id}"

"""One :class:`~exchange.clients.department.Department` per department, held by the server.

The console acts for a department through the very client the command line
uses: the same checks, the same refusals, the same audit entries. Its
signing key (``<keys-dir>/<prefix><department>.pem``; the prefix is ``key_``
when systemd hands the folder over with ``LoadCredential=key:DIR``) is loaded
here and never leaves the server. Commands of one department run one at a time (a lock per desk),
so each audit entry names the person whose command it is (detail ``person``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.bus.connection import Connection
from exchange.catalog.signing import load_private_key
from exchange.clients.department import Department
from exchange.console.accounts import Person
from exchange.errors import ControlStateReset, ExchangeError

if TYPE_CHECKING:
    from exchange.metrics import AuditMetrics

log = logging.getLogger(__name__)


class Desks:
    """Started departments, by id; started on first use, stopped with the console."""

    def __init__(
        self,
        connect: Callable[[str], Connection],
        keys_dir: Path | None,
        key_prefix: str = "",
        audit_metrics: AuditMetrics | None = None,
    ) -> None:
        self.connect = connect
        self.keys_dir = keys_dir
        self.key_prefix = key_prefix
        #: the desks' audit chains (one per department, role = the department) export here
        self.audit_metrics = audit_metrics
        self._desks: dict[str, Department] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def key_file(self, department: str) -> Path | None:
        """Where ``department``'s signing key is read from (None: no keys folder)."""
        if self.keys_dir is None:
            return None
        return self.keys_dir / f"{self.key_prefix}{department}.pem"

    def holds_key(self, department: str) -> bool:
        """Whether the console has a signing key file for ``department``."""
        path = self.key_file(department)
        return path is not None and path.exists()

    def _key(self, department: str) -> Any:
        path = self.key_file(department)
        if path is None or not path.exists():
            return None  # the catalog decides whether this department must sign
        return load_private_key(path)

    async def _desk(self, department: str) -> Department:
        desk = self._desks.get(department)
        if desk is None:
            desk = Department(
                self.connect(department),
                department,
                signing_key=self._key(department),
                audit_metrics=self.audit_metrics,
            )
            await desk.start()
            self._desks[department] = desk
        return desk

    @asynccontextmanager
    async def acting(self, person: Person) -> AsyncIterator[Department]:
        """The person's department, caught up with the bus, acting as that person."""
        if person.department is None:
            raise ExchangeError(f"{person.user} belongs to no department")
        lock = self._locks.setdefault(person.department, asyncio.Lock())
        async with lock:
            desk = await self._desk(person.department)
            try:
                await desk.refresh()
            except ControlStateReset:
                # the control topics went back under this session: it acts no more; the
                # next request starts a new one, reading them as they are now
                self._desks.pop(person.department, None)
                await desk.stop()
                raise
            desk.person = person.user
            try:
                yield desk
            finally:
                desk.person = None

    async def stop(self) -> None:
        desks, self._desks = self._desks, {}
        for desk in desks.values():
            try:
                await desk.stop()
            except Exception:  # stop the others all the same
                log.exception("stopping the desk of %s", desk.department)

"""What the console holds while it runs: people, sessions, desks, the catalog reader, the log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exchange.audit.log import Item
from exchange.bus.connection import Connection
from exchange.console.accounts import AccountBook
from exchange.console.audit_tail import AuditTail
from exchange.console.desks import Desks
from exchange.console.lockout import Lockout
from exchange.console.sessions import SessionStore
from exchange.control.state import ControlFollower, ControlState
from exchange.errors import ExchangeError
from exchange.metrics import AuditMetrics


@dataclass
class ConsoleSettings:
    """The console's options (``exchange console --help`` describes each)."""

    accounts: Path
    keys_dir: Path | None = None
    keys_prefix: str = ""
    router_metrics: list[str] = field(default_factory=list)
    secure_cookies: bool = True
    max_failures: int = 5
    lock_minutes: float = 15.0
    page_size: int = 50


class ConsoleService:
    """Started with the app (its lifespan), stopped with it."""

    def __init__(
        self,
        bus: Connection,
        connect: Callable[[str], Connection],
        settings: ConsoleSettings,
        accounts: AccountBook,
        audit_metrics: AuditMetrics | None = None,
    ) -> None:
        """``bus`` reads the control topics; ``connect(principal)`` is a principal's connection
        (each department's for its commands, ``auditor``'s for the access log);
        ``audit_metrics``: where the departments' audit chains are counted."""
        self.bus = bus
        self.connect = connect
        self.settings = settings
        self.accounts = accounts
        self.lockout = Lockout(settings.max_failures, settings.lock_minutes * 60)
        self.sessions = SessionStore(secure=settings.secure_cookies)
        self.desks = Desks(connect, settings.keys_dir, settings.keys_prefix, audit_metrics)
        self._reader: ControlFollower | None = None
        self._log = AuditTail(connect("auditor"))
        self._read_lock = asyncio.Lock()

    async def start(self) -> None:
        reader = ControlFollower(ControlState(self.bus))
        try:
            await reader.start(follow=False, from_snapshot=True)
        except BaseException:  # failed or cancelled half-way: its consumer closed
            await reader.stop()
            raise
        self._reader = reader

    async def stop(self) -> None:
        await self.desks.stop()
        await self._log.stop()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()

    async def __aenter__(self) -> ConsoleService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def state(self) -> ControlState:
        """The catalog and grant book as they are on the bus now."""
        if self._reader is None:
            raise ExchangeError("the console is not started")
        async with self._read_lock:
            return await self._reader.catch_up()

    async def log(self) -> list[Item]:
        """The whole access log, read as the auditor principal (only what is new each time)."""
        return await self._log.read()

"""``async with`` for the bus's long-running parts: started on entry, stopped on exit.

A start that fails half way is stopped before the error goes on, so a client it
had already started is closed; ``stop`` must therefore be safe to call on a
part that started partly, and more than once.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncService:
    """Base of :class:`~exchange.router.loop.Router`, :class:`~exchange.control.state.ControlFollower`
    and :class:`~exchange.audit.writer.AuditWriter`."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

"""The agent: a department's session kept open, answering commands on a Unix socket.

One request per connection, one JSON line each way (see :mod:`exchange.agent.client`).
Commands run one at a time through the same :class:`Department` methods the
command line uses; each is caught up with the control topics first and audited
as usual. A session the bus invalidates (control topics recreated:
:class:`~exchange.errors.ControlStateReset`) is started again for the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.agent.client import MAX_MESSAGE, OPS, PROTOCOL, listening, socket_path
from exchange.bus.connection import Connection
from exchange.clients.department import Department
from exchange.errors import ControlStateReset, ExchangeError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock: socket.socket | None = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class Agent:
    """Answers ``approve``, ``reject`` and ``revoke`` for one department on one bus."""

    def __init__(
        self,
        bus: Connection,
        department: str,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        key_path: Path | None = None,
        path: Path | None = None,
    ) -> None:
        self.bus = bus
        self.department = department
        self.signing_key = signing_key
        self.key_path = key_path.resolve() if key_path is not None else None
        self.path = path or socket_path(department)
        self._session: Department | None = None
        self._lock = asyncio.Lock()

    async def _department(self) -> Department:
        if self._session is None:
            session = Department(self.bus, self.department, signing_key=self.signing_key)
            await session.start()
            self._session = session
        return self._session

    async def close(self) -> None:
        """End the session (the agent's socket is :meth:`serve`'s to close)."""
        await self._drop_session()

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.stop()

    async def run_op(self, op: str, args: dict[str, Any]) -> str:
        """Run one command as the department; its result as the command line prints it."""
        async with self._lock:
            d = await self._department()
            try:
                return await _dispatch(d, op, args)
            except ControlStateReset:
                await self._drop_session()  # the next command starts a session afresh
                raise

    def _declines(self, request: dict[str, Any]) -> str | None:
        """Why this agent is not the one for ``request`` (None: it is)."""
        if request.get("department") != self.department:
            return f"this agent acts as {self.department!r}"
        wanted_bus = request.get("bootstrap")
        if wanted_bus and wanted_bus != self.bus.bootstrap:
            return f"this agent is on {self.bus.bootstrap}"
        wanted_key = request.get("key")
        if wanted_key and Path(wanted_key) != self.key_path:
            return "this agent holds another key"
        return None

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (never raises for what the request carries)."""
        if request.get("protocol") != PROTOCOL:
            return {"ok": False, "error": f"agent protocol {PROTOCOL} expected"}
        why = self._declines(request)
        if why is not None:
            return {"declined": why}
        op, args = request.get("op"), request.get("args")
        if op not in OPS or not isinstance(args, dict):
            return {"ok": False, "error": f"unknown command {op!r}: the agent runs {OPS}"}
        try:
            result = await self.run_op(op, args)
        except ExchangeError as exc:
            return {"ok": False, "error": str(exc), "bus": self.bus.bootstrap}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"{op}: malformed arguments ({exc})"}
        return {"ok": True, "result": result, "bus": self.bus.bootstrap}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer)
            if uid not in (os.getuid(), 0):
                log.warning("agent: refused a connection from uid %s", uid)
                return
            line = await reader.readline()
            if not line.strip():
                return  # a liveness probe (client.listening)
            try:
                request = json.loads(line)
            except ValueError:
                reply: dict[str, Any] = {"ok": False, "error": "the request is not JSON"}
            else:
                reply = await self.answer(request) if isinstance(request, dict) else {}
            writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            log.warning("agent: a client went away or sent too much")
        finally:
            writer.close()

    async def serve(self, ready: Callable[[Path], None] | None = None) -> None:
        """Listen until SIGTERM or SIGINT; the session starts before the socket opens."""
        if listening(self.department):
            raise ExchangeError(f"an agent of {self.department} already listens at {self.path}")
        await self._department()  # a bad catalog, key or broker fails here, not later
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by an agent that is gone (checked above)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await asyncio.start_unix_server(
            self._handle, path=str(self.path), limit=MAX_MESSAGE
        )
        os.chmod(self.path, 0o600)
        try:
            if ready is not None:
                ready(self.path)
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            await self._drop_session()


async def _dispatch(d: Department, op: str, args: dict[str, Any]) -> str:
    if op == "revoke":
        await d.revoke(str(args["grant_id"]), reason=str(args["reason"]))
        return f"revoked {args['grant_id']}"
    if op == "reject":
        await d.reject(str(args["application_id"]), reason=str(args["reason"]))
        return f"rejected {args['application_id']}"
    until = args.get("until")
    return await d.approve(
        str(args["application_id"]),
        fields=args.get("fields"),
        row_filter=args.get("row_filter"),
        masks=args.get("masks") or {},
        until=dt.datetime.fromisoformat(until) if until else None,
        verify=args.get("verify"),
        quota_per_second=args.get("quota_per_second"),
        quota_per_day=args.get("quota_per_day"),
        at_rest=args.get("at_rest"),
    )

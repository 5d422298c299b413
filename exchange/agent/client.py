"""The command line's side of a department agent: find its socket, hand it a command.

Standard library only: a forwarded ``exchange revoke`` imports nothing of Kafka,
Avro or pydantic. A command is forwarded only to an agent of the same
department, on the same bus (when the command names its bus) and holding the
same key file (when the command names one); otherwise :func:`forward` returns
``None`` and the command runs its own session, as it does with no agent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTOCOL = 1
MAX_MESSAGE = 1 << 20  # one JSON line each way; commands are small
OPS = ("approve", "reject", "revoke")


def state_dir() -> Path:
    """``EXCHANGE_STATE_DIR``, else the default of :class:`exchange.settings.Settings`."""
    explicit = os.environ.get("EXCHANGE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gov-exchange"


def socket_path(department: str, base: Path | None = None) -> Path:
    """Where the agent of ``department`` listens: ``<state dir>/agents/<digest>.sock``.

    The name is a digest (a department id can be longer than a socket path allows).
    """
    digest = hashlib.sha256(department.encode()).hexdigest()[:24]
    return (base or state_dir()) / "agents" / f"{digest}.sock"


@dataclass(frozen=True)
class Reply:
    """What the agent answered: ``ok`` with the command's result, or the refusal's message."""

    ok: bool
    result: str = ""
    error: str = ""
    bus: str = ""


class AgentSilent(Exception):
    """The agent took the command but did not answer: whether it was applied is unknown."""


def _exchange(path: Path, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
    """Send one request line, read one reply line; None if nobody listens at ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except OSError:  # no agent, or a socket file left by one that is gone
            return None
        s.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        buf = b""
        try:
            while not buf.endswith(b"\n") and len(buf) < MAX_MESSAGE:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            raise AgentSilent(
                f"the agent at {path} did not answer within {timeout_s:g} s"
            ) from None
    if not buf.endswith(b"\n"):
        raise AgentSilent(f"the agent at {path} closed the connection without an answer")
    reply: dict[str, Any] = json.loads(buf)
    return reply


def forward(
    department: str,
    op: str,
    args: dict[str, Any],
    *,
    bootstrap: str | None,
    key: Path | None,
    timeout_s: float = 30.0,
) -> Reply | None:
    """Hand ``op`` to the running agent of ``department``; None when there is none for it.

    ``bootstrap`` and ``key`` are what the command was given explicitly (None: not
    given); the agent declines (None here) when they are not its own.
    """
    if os.environ.get("EXCHANGE_NO_AGENT"):
        return None
    path = socket_path(department)
    if not path.exists():
        return None
    request = {
        "protocol": PROTOCOL,
        "department": department,
        "op": op,
        "args": args,
        "bootstrap": bootstrap,
        "key": str(key.resolve()) if key is not None else None,
    }
    reply = _exchange(path, request, timeout_s)
    if reply is None or reply.get("declined"):
        return None
    return Reply(
        ok=bool(reply.get("ok")),
        result=str(reply.get("result", "")),
        error=str(reply.get("error", "")),
        bus=str(reply.get("bus", "")),
    )


def listening(department: str) -> bool:
    """Whether an agent of ``department`` answers on its socket now."""
    path = socket_path(department)
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1.0)
        s.connect(str(path))
        return True
    return False

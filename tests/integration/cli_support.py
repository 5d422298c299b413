"""Running the installed ``exchange`` script as a subprocess, in a private state directory.

``EXCHANGE_STATE_DIR`` points to a temporary directory (so the user's own
broker is never touched) and the connection variables of the test run
(``EXCHANGE_BOOTSTRAP_SERVERS``, the SASL ones) are removed, or replaced by a
:class:`~exchange.bus.connection.Connection`'s (:func:`cli_env`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from exchange.bus.connection import Connection

EXCHANGE = str(Path(sys.executable).with_name("exchange"))
CONNECTION_VARS = (
    "EXCHANGE_BOOTSTRAP_SERVERS",
    "EXCHANGE_SECURITY_PROTOCOL",
    "EXCHANGE_SASL_MECHANISM",
    "EXCHANGE_SASL_USERNAME",
    "EXCHANGE_SASL_PASSWORD",
    "EXCHANGE_SASL_PASSWORD_FILE",
    "EXCHANGE_SSL_CAFILE",
    "EXCHANGE_PARTITIONS",
    "EXCHANGE_REPLICATION_FACTOR",
)


def cli_env(bus: Connection | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without its connection, plus ``bus``'s (if given)."""
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARS}
    if bus is not None:
        env.update(bus.environment())
    env.update(extra)
    return env


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Cli:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = cli_env()
        self.env["EXCHANGE_STATE_DIR"] = str(state_dir)

    def __call__(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXCHANGE, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def recorded_pid(self) -> int | None:
        try:
            return int(json.loads((self.state_dir / "broker.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

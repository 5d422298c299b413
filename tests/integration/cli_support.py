"""Running the installed ``exchange`` script as a subprocess, in a private state directory.

``EXCHANGE_STATE_DIR`` points to a temporary directory (so the user's own
broker is never touched) and ``EXCHANGE_BOOTSTRAP_SERVERS`` is removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXCHANGE = str(Path(sys.executable).with_name("exchange"))


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
        self.env = {k: v for k, v in os.environ.items() if k != "EXCHANGE_BOOTSTRAP_SERVERS"}
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

"""CPU time a process has used, read from Linux's /proc: what the benchmarks compare."""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` used so far; 0 if unknown (not Linux,
    or the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

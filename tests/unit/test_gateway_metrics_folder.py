"""The gateway supervisor's metrics folder: removed when it stops, swept when it was killed.

Real processes: a supervisor is played by a child Python process that makes its folder
with :func:`metrics_folder` and is then stopped with SIGTERM or killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from exchange.gateway.workers import (
    METRICS_LOCK,
    METRICS_PREFIX,
    metrics_folder,
    remove_stale_metrics_folders,
)

_SUPERVISOR = """
import sys, time
from pathlib import Path
from exchange.gateway.workers import metrics_folder
with metrics_folder(Path(sys.argv[1])) as folder:
    (folder / "counter_1.db").write_bytes(b"x")
    print(folder, flush=True)
    time.sleep(600)
"""


def _supervisor(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    folder = Path(proc.stdout.readline().strip())
    proc.stdout.close()
    return proc, folder


def _folders(parent: Path) -> list[Path]:
    return sorted(parent.glob(f"{METRICS_PREFIX}*"))


def test_a_supervisor_stopped_by_sigterm_removes_its_folder(tmp_path: Path) -> None:
    proc, folder = _supervisor(tmp_path)
    assert (folder / "counter_1.db").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert not folder.exists()


def test_the_folder_of_a_killed_supervisor_is_removed_at_the_next_start(tmp_path: Path) -> None:
    live, live_folder = _supervisor(tmp_path)
    killed, killed_folder = _supervisor(tmp_path)
    try:
        killed.kill()
        killed.wait(30)
        assert killed_folder.is_dir()  # SIGKILL: nothing ran
        with metrics_folder(tmp_path) as mine:
            assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(mine)
            assert _folders(tmp_path) == sorted([live_folder, mine])  # the live one kept
        assert _folders(tmp_path) == [live_folder]
    finally:
        live.kill()
        live.wait(30)
    assert remove_stale_metrics_folders(tmp_path) == [live_folder]
    assert _folders(tmp_path) == []


def test_a_folder_without_its_lock_is_stale_only_if_the_pid_it_names_is_gone(
    tmp_path: Path,
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dead = tmp_path / f"{METRICS_PREFIX}{gone}-abc"  # killed before it took its lock
    making = tmp_path / f"{METRICS_PREFIX}{os.getpid()}-def"  # taking its lock this instant
    earlier = tmp_path / f"{METRICS_PREFIX}k2j4h5"  # an earlier version's: may be live
    other = tmp_path / "gov-exchange-something-else"
    for folder in (dead, making, earlier, other):
        folder.mkdir()
    (tmp_path / f"{METRICS_PREFIX}3-a-file").write_text("not a folder")
    assert remove_stale_metrics_folders(tmp_path) == [dead]
    assert _folders(tmp_path) == sorted([making, earlier, tmp_path / f"{METRICS_PREFIX}3-a-file"])
    assert other.is_dir()
    assert not (making / METRICS_LOCK).exists()

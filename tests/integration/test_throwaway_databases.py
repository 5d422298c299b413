"""The suite's own database servers: they stop with their owner, and say what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange.dev import databases
from exchange.dev.databases import DatabaseServerError, ThrowawayMariaDB, ThrowawayPostgres

OWNER = """
import sys, time
from exchange.dev.databases import ThrowawayMariaDB, ThrowawayPostgres
kind = {"pg": ThrowawayPostgres, "my": ThrowawayMariaDB}[sys.argv[1]]
server = kind().start()
with open(sys.argv[2] + ".tmp", "w") as out:
    out.write(f"{server.process.pid} {server.dir}")
import os
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("kind", ["pg", "my"])
def test_a_server_stops_when_its_owner_is_killed_and_its_directory_goes(
    kind: str, tmp_path: Path
) -> None:
    said = tmp_path / "server"
    with subprocess.Popen([sys.executable, "-c", OWNER, kind, str(said)]) as owner:
        deadline = time.monotonic() + 60
        while not said.exists():
            assert owner.poll() is None, "the owner failed to start its server"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pid_text, directory = said.read_text().split()
        server_pid = int(pid_text)
        assert Path(directory).is_dir()
        os.kill(owner.pid, signal.SIGKILL)  # no cleanup code of the owner runs
    deadline = time.monotonic() + 30
    while not _gone(server_pid):
        assert time.monotonic() < deadline, f"server {server_pid} outlived its owner"
        time.sleep(0.1)
    assert Path(directory) in databases.remove_stale_dirs()
    assert not Path(directory).exists()


def test_stop_removes_process_and_directory() -> None:
    server = ThrowawayPostgres().start()
    assert server.process is not None
    assert server.dir is not None
    pid, directory = server.process.pid, server.dir
    server.stop()
    assert _gone(pid)
    assert not directory.exists()


@pytest.mark.parametrize(
    ("kind", "package"), [(ThrowawayPostgres, "postgresql"), (ThrowawayMariaDB, "mariadb-server")]
)
def test_a_missing_server_binary_names_the_package_to_install(
    kind: type[ThrowawayPostgres | ThrowawayMariaDB], package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(databases, "_find", lambda names, patterns: None)
    with pytest.raises(DatabaseServerError, match=rf"Debian package {package}.*apt-get install"):
        kind()

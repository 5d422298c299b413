"""``exchange broker start | stop | status`` through the real CLI, in a private state dir.

Every command runs as a subprocess of the installed ``exchange`` script, with
``EXCHANGE_STATE_DIR`` pointing to a temporary directory (so the user's own
broker is never touched) and ``EXCHANGE_BOOTSTRAP_SERVERS`` removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Cli, alive

from exchange.dev.broker import answers_kafka, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.embedded_only(
        "the embedded broker's own commands (exchange broker start/stop/status); test_kafka_engine covers --engine kafka"
    ),
]


def _tansu_pids(port: int) -> list[int]:
    """Live processes whose command line is a Tansu broker on ``port``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and b"tansu" in args[0] and any(f":{port}".encode() in a for a in args):
            pid = int(proc.name)
            if alive(pid):
                pids.append(pid)
    return pids


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "state")
    try:
        yield c
    finally:
        # never leave a broker behind, even when a test fails half-way
        pid = c.recorded_pid()
        if pid is not None:
            c("broker", "stop")
        if pid is not None and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _started(out: str) -> tuple[int, int]:
    m = re.search(r"pid (\d+)\), bootstrap servers: 127\.0\.0\.1:(\d+)", out)
    assert m, out
    return int(m[1]), int(m[2])


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_start_status_stop_leaves_no_broker_process(cli: Cli) -> None:
    none = cli("broker", "status")
    assert none.returncode == 1
    assert "exchange broker start" in none.stdout

    started = cli("broker", "start")
    assert started.returncode == 0, started.stderr
    assert "embedded broker started" in started.stdout
    pid, port = _started(started.stdout)
    assert cli.recorded_pid() == pid
    assert alive(pid)
    assert _tansu_pids(port) == [pid]
    assert answers_kafka(port)

    running = cli("broker", "status")
    assert running.returncode == 0, running.stderr
    assert f"running (pid {pid}), bootstrap servers: 127.0.0.1:{port}" in running.stdout

    stopped = cli("broker", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"embedded broker stopped (pid {pid}" in stopped.stdout
    assert _wait_gone(pid), f"broker pid {pid} still alive after 'exchange broker stop'"
    assert _tansu_pids(port) == []
    assert not answers_kafka(port)
    assert not (cli.state_dir / "broker.json").exists()

    after = cli("broker", "status")
    assert after.returncode == 1
    assert "no embedded broker is running" in after.stdout


def test_second_start_reports_the_running_broker(cli: Cli) -> None:
    first = cli("broker", "start")
    assert first.returncode == 0, first.stderr
    pid, port = _started(first.stdout)

    second = cli("broker", "start")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    assert _started(second.stdout) == (pid, port)
    assert cli.recorded_pid() == pid
    assert _tansu_pids(port) == [pid]

    # even asking for another port does not start a second broker
    other = free_port()
    third = cli("broker", "start", "--port", str(other))
    assert "already running" in third.stdout
    assert _started(third.stdout) == (pid, port)
    assert _tansu_pids(other) == []


def test_status_forgets_a_broker_that_died(cli: Cli) -> None:
    pid, _port = _started(cli("broker", "start").stdout)
    os.kill(pid, signal.SIGKILL)
    assert _wait_gone(pid)
    assert cli("broker", "status").returncode == 1
    assert not (cli.state_dir / "broker.json").exists()


def test_start_with_port_uses_that_port(cli: Cli) -> None:
    port = free_port()
    started = cli("broker", "start", "--port", str(port))
    assert started.returncode == 0, started.stderr
    pid, got = _started(started.stdout)
    assert got == port
    assert answers_kafka(port)
    assert _tansu_pids(port) == [pid]


@pytest.mark.parametrize(
    "args",
    [
        ["catalog", "show"],
        ["consume", "--as", "health", "birth_medical_certificate", "--timeout", "1"],
    ],
    ids=["catalog-show", "consume"],
)
def test_kafka_command_without_broker_says_how_to_start_one(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode != 0
    assert "exchange broker start" in result.stderr
    assert "--bootstrap-servers" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not (cli.state_dir / "broker.json").exists()

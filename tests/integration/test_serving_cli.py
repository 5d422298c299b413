"""The long-running commands as an operator runs them: their log and metrics endpoint.

``exchange router`` and ``exchange audit archive`` run as subprocesses of the
installed script against the module's broker. The metrics endpoint listens on
loopback unless told otherwise (checked on the listening socket itself, in
/proc/net/tcp, and by connecting through a non-loopback address of the machine
when it has one); the router's log at INFO is the bus's own events, the Kafka
client libraries' lines only when asked for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from routing_support import SESSION_MS

from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE = str(Path(sys.executable).with_name("exchange"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp and tcp6 give them) listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            local, _remote, state = line.split()[1:4]
            addr, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                out.add(addr)
    return out


def non_loopback_address() -> str | None:
    """An address of this machine outside 127.0.0.0/8, if it has one (nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: picks the outgoing interface
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def wait_for(self, text: str, *, in_stderr: bool = False, timeout: float = 60) -> None:
        path = self.stderr if in_stderr else self.stdout
        deadline = time.monotonic() + timeout
        while text not in path.read_text(encoding="utf-8"):
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.stderr.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen in {timeout} s: {path.read_text()}")
            time.sleep(0.1)


@contextmanager
def running(
    tmp_path: Path, bus: Connection, *args: str, env: dict[str, str] | None = None
) -> Iterator[Running]:
    tag = uuid.uuid4().hex[:6]
    out, err = tmp_path / f"{tag}.out", tmp_path / f"{tag}.err"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")},
        **bus.environment(),
        # a router outside the embedded broker (the Kafka lane) refuses to start without one
        "EXCHANGE_MASK_SECRET": "serving-tests-mask-secret-0123456789",
        **(env or {}),
    }
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([EXCHANGE, *args], cwd=tmp_path, env=full_env, stdout=o, stderr=e)
    try:
        yield Running(proc, out, err)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def router_args(bus: Connection, port: int, *extra: str) -> list[str]:
    return [
        "router",
        "--bootstrap-servers",
        bus.bootstrap,
        "--group",
        f"serving-{uuid.uuid4().hex[:6]}",
        "--session-timeout-ms",
        str(SESSION_MS),
        "--metrics-port",
        str(port),
        *extra,
    ]


def test_router_metrics_on_loopback_and_its_own_events_in_its_log(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    port = free_port()
    with running(tmp_path, bus, *router_args(bus, port)) as router:
        router.wait_for(f"metrics on http://127.0.0.1:{port}/metrics")
        router.wait_for("partitions assigned to this router", in_stderr=True)
        assert listening(port) == {"0100007F"}  # 127.0.0.1 only: not 0.0.0.0, not ::
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert b"gov_exchange_policy_reloads_total" in r.read()
        outside = non_loopback_address()
        if outside is not None:
            assert not answers(outside, port), f"metrics answer on {outside}"
    log = router.stderr.read_text(encoding="utf-8").splitlines()
    assert any(
        "INFO exchange.router.loop: policy reloaded (every resource)" in line for line in log
    )
    assert not [line for line in log if " aiokafka" in line or " kafka." in line], log


def test_metrics_host_and_client_log_level_are_the_operators_choice(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    port = free_port()
    args = router_args(bus, port, "--metrics-host", "0.0.0.0")
    with running(tmp_path, bus, *args, env={"EXCHANGE_CLIENT_LOG_LEVEL": "info"}) as router:
        router.wait_for(f"metrics on http://0.0.0.0:{port}/metrics")
        router.wait_for("partitions assigned to this router", in_stderr=True)
        assert listening(port) == {"00000000"}
    assert " INFO aiokafka" in router.stderr.read_text(encoding="utf-8")


def test_audit_archive_metrics_listen_on_loopback(bus: Connection, tmp_path: Path) -> None:
    port = free_port()
    args = ["audit", "archive", "--to", str(tmp_path / "audit.sqlite")]
    args += ["--bootstrap-servers", bus.bootstrap, "--metrics-port", str(port)]
    with running(tmp_path, bus, *args) as archiver:
        archiver.wait_for(f"metrics on http://127.0.0.1:{port}/metrics")
        assert listening(port) == {"0100007F"}


def test_a_bad_log_level_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [EXCHANGE, "router", "--bootstrap-servers", "127.0.0.1:1", "--log-level", "LOUD"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--log-level (EXCHANGE_LOG_LEVEL) 'LOUD': use DEBUG, INFO, WARNING, ERROR" in (
        result.stderr
    )

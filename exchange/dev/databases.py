"""Throwaway PostgreSQL and MariaDB servers for tests, benchmarks and examples.

The test suite, ``benchmarks/connectors.py``, ``benchmarks/audit_query.py`` and
the connector examples need real database servers, and nothing on a fresh
machine runs one. This module starts its own from the Debian packages'
binaries (``postgresql``, ``mariadb-server``): a data directory in a new
temporary directory, a free port on 127.0.0.1, a Unix socket in that
directory, and no password (trust on loopback, as a development server has).

Each server stops and its directory is removed when :meth:`stop` runs or the
``with`` block ends, also when the owning process is killed: the server is
started with Linux's parent-death signal set, so it shuts down when the
process that started it exits, and the next start removes directories left by
owners that no longer run.

PostgreSQL refuses to run as root; run as root, the servers run as the
unprivileged users the Debian packages create (``postgres``, ``mysql``).

Run ``python -m exchange.dev.databases`` to start both and print their URLs
(for trying the connector examples by hand); Ctrl-C stops them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from exchange.dev.broker import Served, die_with_parent, free_port
from exchange.errors import ExchangeError

#: prefix of every data directory this module makes, under the system's temp dir
DIR_PREFIX = "gov-exchange-db-"
OWNER_FILE = "owner.pid"

INSTALL_HINT = (
    "run 'sudo apt-get install --no-install-recommends postgresql mariadb-server' "
    "(or 'make test' as root, which installs them)"
)


class DatabaseServerError(ExchangeError):
    """A throwaway database server could not be found or started; says which and why."""


def _find(names: list[str], patterns: list[str]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for pattern in patterns:
        hits = sorted(glob.glob(pattern), reverse=True)  # the newest major version first
        if hits:
            return hits[0]
    return None


def _binary(kind: str, names: list[str], patterns: list[str], package: str) -> str:
    found = _find(names, patterns)
    if found is None:
        raise DatabaseServerError(
            f"cannot start a throwaway {kind}: {names[0]} not found "
            f"(Debian package {package}); {INSTALL_HINT}"
        )
    return found


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run servers as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "mysql", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise DatabaseServerError("running as root and no unprivileged user to run a database as")


def _user_for(preferred: str) -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(preferred)
        return entry.pw_uid, entry.pw_gid
    return _run_as()


def remove_stale_dirs() -> list[Path]:
    """Remove data directories whose owning process no longer runs; returns them."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(DIR_PREFIX + "*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and Path(f"/proc/{owner}").exists():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class _Server(Served):
    """What both servers share: a directory, a port, a process, start and stop."""

    kind = "database"
    stop_signal = signal.SIGTERM

    def __init__(self, *, fast: bool = True, ready_timeout: float = 60.0) -> None:
        #: fsync off and the like: fine for data thrown away at the end, not for benchmarks of disks
        self.fast = fast
        self.ready_timeout = ready_timeout
        self.port = 0
        self.dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._ids = _user_for(self._os_user)

    _os_user = "nobody"

    # --- to be provided by each server ---
    def _init(self, data: Path) -> None:
        raise NotImplementedError

    def _command(self, data: Path) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _after_start(self) -> None:
        """Create the database and users the URL names."""

    # --- shared ---
    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "server.log"

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def _popen(self, args: list[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            return subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C reaches us, and we stop it cleanly
                user=self._ids[0] if self._ids else None,
                group=self._ids[1] if self._ids else None,
                extra_groups=[] if self._ids else None,
                preexec_fn=lambda: die_with_parent(self.stop_signal),
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]

    def _run(self, args: list[str], what: str) -> None:
        proc = self._popen(args, log=self.log_path)
        if proc.wait(timeout=120) != 0:
            raise DatabaseServerError(
                f"{what} failed with exit code {proc.returncode}:\n{self._log_tail()}"
            )

    def start(self) -> Self:
        remove_stale_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX + self.kind.lower() + "-"))
        (self.dir / OWNER_FILE).write_text(str(os.getpid()))
        if self._ids:
            os.chown(self.dir, *self._ids)
        data = self.dir / "data"
        try:
            self._init(data)
            self.port = free_port()
            self.process = self._popen(self._command(data), log=self.log_path)
            deadline = time.monotonic() + self.ready_timeout
            while not self._ready():
                if self.process.poll() is not None:
                    raise DatabaseServerError(
                        f"{self.kind} exited with code {self.process.returncode} at start:\n"
                        + self._log_tail()
                    )
                if time.monotonic() > deadline:
                    raise DatabaseServerError(
                        f"{self.kind} did not accept connections on 127.0.0.1:{self.port} "
                        f"within {self.ready_timeout:.0f} s:\n{self._log_tail()}"
                    )
                time.sleep(0.1)
            self._after_start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down (forcefully after ``timeout`` s) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class ThrowawayPostgres(_Server):
    """A PostgreSQL server with database ``test``, superuser ``postgres``, trust auth."""

    kind = "PostgreSQL"
    stop_signal = signal.SIGINT  # "fast" shutdown: ends open sessions instead of waiting for them
    _os_user = "postgres"
    user = "postgres"
    database = "test"

    def __init__(self, *, fast: bool = True, ready_timeout: float = 60.0) -> None:
        super().__init__(fast=fast, ready_timeout=ready_timeout)
        pg = ["/usr/lib/postgresql/*/bin/"]
        self.initdb = _binary("PostgreSQL", ["initdb"], [p + "initdb" for p in pg], "postgresql")
        self.postgres = str(Path(self.initdb).with_name("postgres"))

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={self.database}"

    def _init(self, data: Path) -> None:
        self._run(
            [
                self.initdb,
                "--pgdata",
                str(data),
                "--username",
                self.user,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
            ],
            "initdb",
        )

    def _command(self, data: Path) -> list[str]:
        assert self.dir is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "max_connections": "200",
            "timezone": "UTC",
        }
        if self.fast:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        args = [self.postgres, "-D", str(data)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                connect_timeout=2,
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _after_start(self) -> None:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')


class ThrowawayMariaDB(_Server):
    """A MariaDB server whose ``root`` has no password, on loopback TCP and its socket."""

    kind = "MariaDB"
    _os_user = "mysql"
    user = "root"

    def __init__(self, *, fast: bool = True, ready_timeout: float = 60.0) -> None:
        super().__init__(fast=fast, ready_timeout=ready_timeout)
        self.install_db = _binary(
            "MariaDB",
            ["mariadb-install-db", "mysql_install_db"],
            ["/usr/bin/mariadb-install-db"],
            "mariadb-server",
        )
        self.mariadbd = _binary(
            "MariaDB", ["mariadbd", "mysqld"], ["/usr/sbin/mariadbd"], "mariadb-server"
        )

    @property
    def url(self) -> str:
        """The server's URL without a database: append one (``url + "db"``)."""
        return f"mysql://{self.user}@127.0.0.1:{self.port}/"

    @property
    def socket_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "mysqld.sock"

    def _init(self, data: Path) -> None:
        args = [
            self.install_db,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        if self._ids:
            args.append(f"--user={pwd.getpwuid(self._ids[0]).pw_name}")
        self._run(args, "mariadb-install-db")

    def _command(self, data: Path) -> list[str]:
        assert self.dir is not None
        args = [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path}",
            f"--pid-file={self.dir / 'mariadbd.pid'}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--default-time-zone=+00:00",
            "--max-connections=200",
        ]
        if self._ids:
            args.append(f"--user={pwd.getpwuid(self._ids[0]).pw_name}")
        if self.fast:
            args += [
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--skip-log-bin",
            ]
        return args

    def _ready(self) -> bool:
        """The server greets on its socket (a handshake packet of protocol version 10)."""
        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket_path))
                greeting = s.recv(5)
        except OSError:
            return False
        return len(greeting) == 5 and greeting[4] == 10

    def _after_start(self) -> None:
        """Let ``root`` in over loopback TCP too (install-db creates it for the socket only)."""
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.socket_path), user=self.user, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'127.0.0.1'")
                cur.execute(
                    f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'127.0.0.1' WITH GRANT OPTION"
                )
        finally:
            conn.close()


def main() -> int:
    """Start both servers, print their URLs, wait for Ctrl-C, stop them."""
    try:
        with ThrowawayPostgres() as pg, ThrowawayMariaDB() as my:
            print(f"PostgreSQL: {pg.url}")
            print(f"MariaDB:    {my.url}")
            print("throwaway servers: their data goes when they stop. Ctrl-C stops them.")
            sys.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    except DatabaseServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

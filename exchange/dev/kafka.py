"""Apache Kafka clusters (KRaft, 1 or 3 nodes) on loopback: durable, with SCRAM users and ACLs.

This is the production engine the bus is tested on (the embedded Tansu broker
keeps nothing across a restart and has no users). The server's jars come from
Maven Central through ``deploy/kafka/pom.xml`` with Maven's ordinary client,
fetched once into ``.cache/kafka/<version>/`` (git-ignored) and re-used; they
run on the machine's Java 17 or newer (``JAVA_HOME``, else ``java`` on PATH).

Everything a cluster has lives in its data directory, so stopping keeps the
data and starting again resumes it::

    DIR/cluster.json            cluster id, node count, ports (fixed at the first start)
    DIR/admin.password          the bootstrap super user's password (0600)
    DIR/admin.properties        the same as a Kafka client config, for --command-config (0600)
    DIR/node-N/server.properties
    DIR/node-N/data/            the node's log and metadata directories
    DIR/node-N/server.log       its log (authorizer.log: requests it refused; jvm.log: stdout)
    DIR/node-N/pid

A node's ``server.properties`` is ``deploy/kafka/server.properties`` (the settings
every node shares, the file operators deploy) followed by the node's own part:
its id, ports, directories, the replication its node count allows and the super
user's password. Each node is broker and controller in one JVM (KRaft combined mode): 3 JVMs
for 3 nodes instead of 6, which is what a 2-core machine can hold. The price:
the metadata quorum goes with the brokers, so with 2 of 3 nodes down nothing
can change the cluster's metadata (an acks=all produce then times out rather
than being refused with NOT_ENOUGH_REPLICAS).

Clients reach the ``CLIENT`` listener with SASL/SCRAM-SHA-512 (brokers talk
to each other on it as the super user); controllers talk SASL/PLAIN among
themselves with the same user, so no unauthenticated principal exists. The
StandardAuthorizer refuses everything no ACL allows, except to the super user
``admin``, whose password is generated at the first start.

A cluster started from Python stops when its owner exits (Linux's parent-death
signal), unless it is made with ``die_with_parent=False`` as ``exchange broker
start --engine kafka`` does. Run ``python -m exchange.dev.kafka fetch`` to fetch
the jars ahead of time.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from exchange.bus.connection import Connection, Secret
from exchange.dev.broker import (
    Served,
    answers_kafka,
    die_with_parent,
    free_port,
    is_zombie,
    terminate,
)
from exchange.errors import ExchangeError

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kafka"
POM = DEPLOY / "pom.xml"
LOG4J2 = DEPLOY / "log4j2.properties"
SERVER_PROPERTIES = DEPLOY / "server.properties"
CACHE = ROOT / ".cache" / "kafka"

SUPER_USER = "admin"
MECHANISM = "SCRAM-SHA-512"
LAYOUT_FILE = "cluster.json"
PASSWORD_FILE = "admin.password"  # noqa: S105 - a file name, not a password
CLIENT_CONFIG_FILE = "admin.properties"

JAVA_HINT = (
    "install Java 17 or newer (e.g. 'apt-get install default-jre-headless') or set JAVA_HOME"
)
MAVEN_HINT = "install Maven (e.g. 'apt-get install maven'), which fetches Kafka from Maven Central"


class KafkaEngineError(ExchangeError):
    """A Kafka cluster could not be fetched, started or reached; says which and why."""


# --- the server's jars -------------------------------------------------------------------


def kafka_version(pom: Path = POM) -> str:
    """The version of ``kafka_2.13`` the pom names (the cache folder is named after it)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom).getroot()  # noqa: S314 - the project's own pom
    for dep in root.iterfind("m:dependencies/m:dependency", ns):
        if dep.findtext("m:artifactId", namespaces=ns) == "kafka_2.13":
            return str(dep.findtext("m:version", namespaces=ns))
    raise KafkaEngineError(f"{pom} names no org.apache.kafka:kafka_2.13")


def java() -> str:
    """The java launcher: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found or not os.access(found, os.X_OK):
        raise KafkaEngineError(f"cannot run Apache Kafka: no java found; {JAVA_HINT}")
    return found


def fetch_jars(cache: Path = CACHE, pom: Path = POM, version: str | None = None) -> Path:
    """The folder of the server's jars, fetched with Maven the first time (idempotent).

    ``version`` names the folder (default: the pom's kafka_2.13 version); other
    tools' poms (Strimzi's CRD generator) are fetched the same way.

    Maven copies into a temporary folder that is renamed when complete, under a
    lock, so a folder that exists is whole and concurrent callers fetch once.
    """
    jars = cache / (version or kafka_version(pom))
    if jars.is_dir():
        return jars
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars.is_dir():
            return jars
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaEngineError(
                f"the jars of {pom} are not in {jars} and mvn is not found to fetch them; "
                f"{MAVEN_HINT}"
            )
        java()  # Maven needs it too: say so now rather than through Maven's error
        tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache))
        args = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
        args += [f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise KafkaEngineError(
                f"fetching {pom.parent.name}/{pom.name} ({jars.name}) from Maven Central failed "
                f"(mvn exit code {done.returncode}); without network, Maven can only use "
                f"what ~/.m2 already holds:\n{tail}"
            )
        tmp.rename(jars)
    return jars


# --- a cluster -----------------------------------------------------------------------------


def _cluster_id() -> str:
    """A new cluster id in Kafka's form (URL-safe base64 of a random UUID, no padding)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid avoids these too
            return text


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def _bindable(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` (connections left in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def read_properties(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a Java properties file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith(("#", "!")):
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise KafkaEngineError(f"{path}, line {number}: not a key=value line: {text!r}")
        values[key.strip()] = value.strip()
    return values


#: each node's maximum Java heap. A node holds about 70 KB of heap per partition replica:
#: at 384 MB a 3-node cluster died of ``OutOfMemoryError`` once the bench's 3,600 grants had
#: made about 4,000 delivery topics (11,300 partition replicas on every node), and at 1 GB
#: (Kafka's own start script's default) the same nodes kept 760-860 MB in use (measured).
#: The heap grows only as far as it is used
DEFAULT_HEAP = "2g"


class KafkaCluster(Served):
    """A KRaft cluster of 1 or 3 combined nodes whose data lives in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        nodes: int | None = None,
        *,
        heap: str = DEFAULT_HEAP,
        fast_start: bool = True,
        die_with_parent: bool = True,
        ready_timeout: float = 120.0,
    ) -> None:
        self.dir = Path(data_dir).resolve()
        self.heap = heap
        #: C1 JIT only and the serial GC: starts in half the time on 2 busy cores and uses
        #: fewer threads, at a lower peak throughput (benchmarks pass False: C2 and G1)
        self.fast_start = fast_start
        self.die_with_parent = die_with_parent
        self.ready_timeout = ready_timeout
        self.layout: dict[str, Any] = {}
        if (self.dir / LAYOUT_FILE).exists():
            self.layout = json.loads((self.dir / LAYOUT_FILE).read_text())
            if nodes is not None and nodes != self.nodes:
                raise KafkaEngineError(
                    f"{self.dir} holds a cluster of {self.nodes} node(s), not {nodes}; "
                    "start it as it is or use another data directory"
                )
        elif nodes not in (None, 1, 3):
            raise KafkaEngineError(f"a cluster has 1 or 3 nodes, not {nodes}")
        self._wanted_nodes = nodes or 1
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    # --- what it is ---
    @property
    def formatted(self) -> bool:
        return bool(self.layout)

    @property
    def nodes(self) -> int:
        return len(self.layout["client_ports"]) if self.layout else self._wanted_nodes

    @property
    def node_ids(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def cluster_id(self) -> str:
        return str(self.layout["cluster_id"])

    @property
    def kafka_version(self) -> str:
        return str(self.layout["kafka_version"])

    def client_port(self, node: int) -> int:
        return int(self.layout["client_ports"][node - 1])

    def controller_port(self, node: int) -> int:
        return int(self.layout["controller_ports"][node - 1])

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.client_port(n)}" for n in self.node_ids)

    @property
    def password_file(self) -> Path:
        return self.dir / PASSWORD_FILE

    @property
    def client_config_file(self) -> Path:
        return self.dir / CLIENT_CONFIG_FILE

    def node_dir(self, node: int) -> Path:
        return self.dir / f"node-{node}"

    def log_path(self, node: int) -> Path:
        return self.node_dir(node) / "server.log"

    def client_options(self, user: str = SUPER_USER, password: str | None = None) -> dict[str, Any]:
        """aiokafka / kafka-python options to reach the cluster as ``user`` (default: admin)."""
        return self.connection(user, password).client_options()

    def connection(self, user: str = SUPER_USER, password: str | None = None) -> Connection:
        """The :class:`~exchange.bus.connection.Connection` of ``user`` (default: admin)."""
        secret = Secret(password) if password is not None else Secret.from_file(self.password_file)
        return Connection(
            self.bootstrap, security_protocol="SASL_PLAINTEXT", username=user, password=secret
        )

    # --- the processes ---
    def pid(self, node: int) -> int | None:
        """The pid of the node's JVM if it runs (checked against /proc, not just the file)."""
        try:
            pid = int((self.node_dir(node) / "pid").read_text())
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        config = str(self.node_dir(node) / "server.properties").encode()
        if b"kafka.Kafka" not in args or config not in args or is_zombie(pid):
            return None
        return pid

    def running(self) -> list[int]:
        """The nodes whose JVM runs."""
        return [n for n in self.node_ids if self.pid(n) is not None] if self.formatted else []

    def start(self) -> Self:
        """Format the storage if new, start every node that is not running, wait until served.

        Also what brings nodes back after :meth:`kill_node`.
        """
        jars = fetch_jars()
        if not self.formatted:
            self._format(jars)
        try:
            for node in self.node_ids:
                if self.pid(node) is None:
                    self._launch(jars, node)
            self.wait_ready()
        except BaseException:
            if self.die_with_parent:
                self.stop()
            raise
        return self

    def kill_node(self, node: int) -> None:
        """SIGKILL one node, as a crash would (the data stays)."""
        pid = self.pid(node)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            terminate(pid, 10.0, self._processes.pop(node, None))

    def stop(self, timeout: float = 30.0) -> None:
        """Shut every node down (forcefully after ``timeout`` s); the data stays."""
        pids = {node: pid for node in self.node_ids if (pid := self.pid(node)) is not None}
        for pid in pids.values():  # all at once: each shutdown waits on the others' quorum
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node, pid in pids.items():
            terminate(pid, max(deadline - time.monotonic(), 1.0), self._processes.pop(node, None))
            (self.node_dir(node) / "pid").unlink(missing_ok=True)

    def post_mortem(self, lines: int = 3) -> str:
        """What each node's logs say, for an error report: whether it runs, and the last
        fatal line of its JVM output (e.g. ``OutOfMemoryError``) or ERROR of its log."""
        report = []
        for node in self.node_ids:
            state = "running" if self.pid(node) is not None else "NOT RUNNING"
            found: list[str] = []
            for log, marks in (
                (self.node_dir(node) / "jvm.log", ("Terminating", "Error", "Exception")),
                (self.log_path(node), ("ERROR", "FATAL")),
            ):
                with contextlib.suppress(OSError):
                    text = log.read_text(errors="replace").splitlines()
                    found += [t for t in text if any(m in t for m in marks)][-lines:]
            said = "".join(f"\n    {t[:300]}" for t in found) or " (no error logged)"
            report.append(f"  node {node} ({state}, {self.node_dir(node)}):{said}")
        return "\n".join(report)

    # --- users ---
    def add_user(self, name: str, password: str) -> None:
        """Create (or change the password of) a SCRAM-SHA-512 user."""
        from exchange.admin.users import set_passwords

        try:
            set_passwords(self.connection(), {name: Secret(password)})
        except ExchangeError as exc:
            raise KafkaEngineError(str(exc)) from None

    def users(self) -> list[str]:
        """The users that have SCRAM credentials, the super user included."""
        with self._admin() as admin:
            return sorted(admin.describe_user_scram_credentials())

    # --- inside ---
    @contextlib.contextmanager
    def _admin(self) -> Iterator[Any]:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(
            **self.client_options(), client_id="gov-exchange-kafka", request_timeout_ms=10_000
        )
        try:
            yield admin
        finally:
            admin.close()

    def _format(self, jars: Path) -> None:
        """Choose ports and a cluster id, write each node's config, format its storage."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(24)
        _write_private(self.password_file, password + "\n")
        _write_private(
            self.client_config_file,
            _properties(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": MECHANISM,
                    "sasl.jaas.config": self._jaas("scram.ScramLoginModule", password),
                }
            ),
        )
        ports = [free_port() for _ in range(2 * self._wanted_nodes)]
        layout = {
            "cluster_id": _cluster_id(),
            "kafka_version": jars.name,
            "client_ports": ports[: self._wanted_nodes],
            "controller_ports": ports[self._wanted_nodes :],
        }
        self.layout = layout
        formats = []
        for node in self.node_ids:
            self.node_dir(node).mkdir(exist_ok=True)
            _write_private(self.node_dir(node) / "server.properties", self._config(node, password))
            # the super user's SCRAM credentials go in with the storage; an @argfile keeps
            # the password off the command line
            argfile = self.node_dir(node) / "format.args"
            scram = f"{MECHANISM}=[name={SUPER_USER},password={password}]"
            config = self.node_dir(node) / "server.properties"
            args = ["kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(config)]
            _write_private(argfile, "\n".join([*args, "--add-scram", scram]) + "\n")
            log = self.node_dir(node) / "format.log"
            formats.append(
                (node, self._spawn([*self._jvm(jars, node, "256m"), f"@{argfile}"], log))
            )
        for node, proc in formats:
            code = proc.wait(timeout=120)
            (self.node_dir(node) / "format.args").unlink(missing_ok=True)
            if code != 0:
                self.layout = {}
                tail = (self.node_dir(node) / "format.log").read_text(errors="replace")[-2000:]
                raise KafkaEngineError(f"formatting node {node} failed (exit {code}):\n{tail}")
        # written last: a directory with this file is a formatted cluster
        (self.dir / LAYOUT_FILE).write_text(json.dumps(layout, indent=2) + "\n")

    @staticmethod
    def _jaas(module: str, password: str, *extra: str) -> str:
        fields = " ".join([f'username="{SUPER_USER}"', f'password="{password}"', *extra])
        return f"org.apache.kafka.common.security.{module} required {fields};"

    def _config(self, node: int, password: str) -> str:
        """The node's server.properties: ``deploy/kafka/server.properties`` and its own part."""
        n = self.nodes
        voters = ",".join(
            f"{i}@127.0.0.1:{port}" for i, port in enumerate(self.layout["controller_ports"], 1)
        )
        isr = 2 if n >= 3 else 1
        own: dict[str, object] = {
            "node.id": node,
            "controller.quorum.voters": voters,
            "listeners": f"CLIENT://127.0.0.1:{self.client_port(node)},"
            f"CONTROLLER://127.0.0.1:{self.controller_port(node)}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{self.client_port(node)}",
            "listener.name.client.scram-sha-512.sasl.jaas.config": self._jaas(
                "scram.ScramLoginModule", password
            ),
            "listener.name.controller.plain.sasl.jaas.config": self._jaas(
                "plain.PlainLoginModule", password, f'user_{SUPER_USER}="{password}"'
            ),
            "log.dirs": self.node_dir(node) / "data",
            "default.replication.factor": n,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": n,
            "transaction.state.log.replication.factor": n,
            "transaction.state.log.min.isr": isr,
        }
        shared = read_properties(SERVER_PROPERTIES)
        clash = sorted(shared.keys() & own.keys())
        if clash:
            raise KafkaEngineError(
                f"{SERVER_PROPERTIES} sets {', '.join(clash)}, which each node sets itself; "
                "remove them there"
            )
        return SERVER_PROPERTIES.read_text() + "\n# this node's own settings\n" + _properties(own)

    def _jvm(self, jars: Path, node: int, heap: str) -> list[str]:
        """The java command up to the main class; the node's folder takes its log files."""
        return [
            java(),
            f"-Xmx{heap}",
            *(
                ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
                if self.fast_start
                else ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
            ),
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}",
            f"-Dkafka.logs.dir={self.node_dir(node)}",
            "-cp",
            f"{jars}/*",
        ]

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the starting shell does not reach it
                preexec_fn=die_with_parent if self.die_with_parent else None,
            )

    def _launch(self, jars: Path, node: int) -> None:
        for port in (self.client_port(node), self.controller_port(node)):
            if not _bindable(port):
                raise KafkaEngineError(
                    f"port {port} of Kafka node {node} is taken by another process; the cluster "
                    f"in {self.dir} keeps the ports of its first start"
                )
        home = self.node_dir(node)
        args = [*self._jvm(jars, node, self.heap), "kafka.Kafka", str(home / "server.properties")]
        proc = self._spawn(args, home / "jvm.log")
        self._processes[node] = proc
        (home / "pid").write_text(f"{proc.pid}\n")

    def wait_ready(self) -> None:
        """Wait until every node answers on its client port and the metadata lists them all."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            for node, proc in self._processes.items():
                if proc.poll() is not None:
                    raise KafkaEngineError(
                        f"Kafka node {node} exited with code {proc.returncode} at start; "
                        f"see {self.log_path(node)} and {self.node_dir(node) / 'jvm.log'}"
                    )
            if self._serving():
                return
            if time.monotonic() > deadline:
                raise KafkaEngineError(
                    f"Kafka did not serve all {self.nodes} broker(s) on {self.bootstrap} within "
                    f"{self.ready_timeout:.0f} s; see the server.log of each node in {self.dir}"
                )
            time.sleep(0.2)

    def _serving(self) -> bool:
        """Every node answers, and the metadata (asked as the super user) has them all unfenced."""
        if not all(answers_kafka(self.client_port(n), timeout=0.2) for n in self.node_ids):
            return False
        from kafka.errors import KafkaError

        try:
            with self._admin() as admin:
                brokers = admin.describe_cluster()["brokers"]
        except KafkaError:
            return False
        # the answer lists fenced brokers too: one is serving only once it is unfenced
        serving = {int(b["broker_id"]) for b in brokers if not b.get("is_fenced")}
        return serving == set(self.node_ids)


def main(argv: list[str] | None = None) -> int:
    """``python -m exchange.dev.kafka fetch``: fetch the jars now (what the tests do first)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m exchange.dev.kafka fetch", file=sys.stderr)
        return 2
    try:
        print(fetch_jars())
    except KafkaEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

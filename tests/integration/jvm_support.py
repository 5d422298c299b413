"""The JVM registry client of ``tests/jvm/registry-client``: built with Maven once, then re-used.

As ``exchange/dev/kafka.py`` does for the Kafka server's jars: Maven's ordinary
client (``~/.m2`` caches what it downloads from Maven Central) builds a copy of
the project in a temporary folder under ``.cache/jvm/`` that is renamed when
complete, under a lock, so a folder that exists is whole and concurrent test
runs build once. The folder is named after a hash of the project's files: an
edit to the pom or a source builds again, anything else re-uses the build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "tests" / "jvm" / "registry-client"
CACHE = ROOT / ".cache" / "jvm"
MAIN_CLASS = "gov.exchange.jvmclient.DecodeDeliveries"


class JvmBuildError(RuntimeError):
    """Maven could not build the JVM client; carries Maven's last lines."""


class MavenMissing(JvmBuildError):
    """No ``mvn`` on PATH and no earlier build to re-use."""


def _project_files(project: Path) -> list[Path]:
    files = [project / "pom.xml", *sorted((project / "src").rglob("*.java"))]
    return [f for f in files if f.is_file()]


def fingerprint(project: Path = PROJECT) -> str:
    digest = hashlib.sha256()
    for path in _project_files(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build(project: Path = PROJECT, cache: Path = CACHE) -> Path:
    """The built client's folder (``app.jar`` and ``lib/``), built the first time (idempotent)."""
    mvn = shutil.which("mvn")
    out = cache / f"{project.name}-{fingerprint(project)}"
    if (out / "app.jar").is_file():
        return out
    if mvn is None:
        raise MavenMissing(
            "mvn is not on PATH (tests/services/require-packages.sh installs Maven), "
            f"and {out} holds no earlier build"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "app.jar").is_file():
            return out
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            for path in _project_files(project):
                target = tmp / "src-copy" / path.relative_to(project)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            pom = tmp / "src-copy" / "pom.xml"
            args = [mvn, "-q", "-B", "-f", str(pom), "package", "dependency:copy-dependencies"]
            args += [f"-DoutputDirectory={tmp / 'lib'}", "-DincludeScope=runtime"]
            done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=900)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                raise JvmBuildError(
                    f"building {project} with Maven failed (exit code {done.returncode}); "
                    f"without network, Maven can only use what ~/.m2 already holds:\n{tail}"
                )
            jar = next((tmp / "src-copy" / "target").glob("registry-client-*.jar"))
            jar.rename(tmp / "app.jar")
            shutil.rmtree(tmp / "src-copy")
            tmp.rename(out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def command(built: Path, *args: str) -> list[str]:
    """The java command line running the client built in ``built`` with ``args``."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java") or "java"
    classpath = os.pathsep.join([str(built / "app.jar"), str(built / "lib" / "*")])
    quiet = "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
    # a short-lived client: no JIT tiers beyond C1, a small heap (2 cores are shared)
    return [
        java,
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Xmx256m",
        quiet,
        "-cp",
        classpath,
        MAIN_CLASS,
        *args,
    ]

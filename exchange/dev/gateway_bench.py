"""Benchmark of the query gateway (接口调用) against a baseline measured in the same run.

``python -m exchange.dev.gateway_bench [--records N] [--seconds S] [--connections C]
[--workers W] [--profile DIR]``

Starts an embedded broker (or uses ``EXCHANGE_BOOTSTRAP_SERVERS``), loads the sample
catalog, gives hrss a data grant on population_basic with a mask and a row filter,
publishes N records, and serves them three times, each in a process of its own, then
(W > 1, by default one per core) the same three again with W processes each on one port
(``exchange gateway --workers W``; W baseline and W stack processes with
``SO_REUSEPORT``), so that a gateway of W workers is compared with a baseline of W:

* the gateway (``exchange gateway``): authentication, purpose, policy (view, mask, row
  filter), quota check, and an audit entry acknowledged by the broker per request;
* the baseline (:mod:`exchange.dev.gateway_baseline`): the same SQLite store behind the
  same HTTP stack and authentication, without policy or audit;
* the stack (the baseline without a store): the HTTP stack and authentication alone,
  the ceiling of any route served on it.

wrk (Debian's ``wrk``, a C load generator in a process of its own) asks each for random
keys over C keep-alive connections for S seconds, after a warm-up. Printed: requests per
second and p99 latency of each, the CPU each server used per request (the figure the
other programs on a shared machine disturb least), the broker's CPU and how busy the
machine was, the ratios, the targets (≥ 2,000 lookups/s, p99 ≤ 20 ms) and the
comparison with X-Road's ~110 requests/s through a pair of security servers. With
``--profile DIR``, py-spy samples each server during its run (:mod:`.profiling`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.control import catalog_store
from exchange.dev import profiling, sample
from exchange.dev.broker import given_or_embedded
from exchange.gateway.workers import default_workers
from exchange.http.server import free_port

CATALOG_DIR = Path(__file__).resolve().parents[2] / "schemas"
POP = "population_basic"
PASSWORD = secrets.token_urlsafe(16)  # made per run
XROAD_RPS = 110.0
TARGET_RPS, TARGET_P99_MS = 2000.0, 20.0

_LUA = """
local keys = {}
for line in io.lines("%(keys)s") do keys[#keys + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%%x+)"), 16) %% 100000)
request = function()
  local k = keys[math.random(#keys)]
  return wrk.format("GET", "/v1/resources/population_basic/records/" .. k ..
    "?purpose=bench", {["Authorization"] = "%(auth)s"})
end
"""


@dataclass
class Run:
    name: str
    rps: float
    p99_ms: float
    non_2xx: int
    #: CPU the server used per request answered (ms); the broker's share of the run (cores)
    server_cpu_ms: float = 0.0
    broker_cores: float = 0.0
    #: how busy the machine was during the run, all its cores (0 to 1)
    machine_busy: float = 0.0


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` used so far; 0 if unknown (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a gateway's workers), from /proc; [pid] if unknown."""
    found, i = [pid], 0
    while i < len(found):
        try:
            children = Path(f"/proc/{found[i]}/task/{found[i]}/children").read_text().split()
        except OSError:
            children = []
        found += [int(c) for c in children]
        i += 1
    return found


def _tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds the processes ``pids`` and their descendants used so far (living ones)."""
    return sum(_cpu_s(p) for pid in pids for p in _tree(pid))


def _machine() -> tuple[int, int]:
    """(busy, total) clock ticks of every core so far, from /proc/stat; (0, 0) if unknown."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


async def _prepare(bus: Connection, workdir: Path, n: int) -> list[str]:
    catalog: Catalog = load_catalog(CATALOG_DIR)
    await catalog_store.load(bus, catalog, actor="bench", unsigned_override="benchmark")
    async with Department(bus, "police") as police, Department(bus, "hrss") as hrss:
        app = await hrss.apply(POP, fields=["name", "birth_date", "address"], purpose="bench")
        await police.approve(
            app, masks={"name": "surname"}, row_filter='region_code.startsWith("33")'
        )
    rows = sample.generate(catalog.resources[POP].schema_, n, seed=5)
    for i, row in enumerate(rows):
        row["region_code"] = "330106"
        row["id_number"] = f"{row['id_number'][:6]}{i:012d}"
    async with Publisher(bus, catalog, "police") as pub:
        for start in range(0, n, 2000):
            await pub.publish(POP, rows[start : start + 2000])
    keys = [r["id_number"] for r in rows]
    (workdir / "keys.txt").write_text("\n".join(keys) + "\n")
    (workdir / "credentials").mkdir()
    (workdir / "credentials" / "hrss.password").write_text(PASSWORD + "\n")
    return keys


def _wait_healthy(
    url: str, proc: subprocess.Popen[bytes], records: int | None, workers: int = 1
) -> None:
    """Until ``workers`` processes (told apart by the pid /health gives) answer /health with
    the store holding ``records``."""
    deadline = time.monotonic() + 120
    ready: set[int] = set()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server behind {url} exited with {proc.returncode}")
        try:
            with httpx.Client() as client:  # a new connection: any worker may answer
                r = client.get(f"{url}/health", timeout=2)
            body = r.json()
            if r.status_code == 200 and (records is None or (body.get("records") or 0) >= records):
                ready.add(int(body.get("pid") or 0))
                if len(ready) >= workers:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url}: {len(ready)} of {workers} workers healthy with {records} records")


def _wrk(
    url: str,
    script: Path,
    seconds: int,
    connections: int,
    name: str,
    pids: tuple[list[int], int | None] = ([], None),
    profile: Path | None = None,
) -> Run:
    """wrk against ``url`` (served by the processes ``pids[0]`` and their children, broker
    ``pids[1]``); with ``profile``, py-spy samples the first server process (and its
    children) meanwhile into that folder."""
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    servers, broker = pids
    spy = None
    if profile is not None and servers:
        spy = profiling.start(servers[0], profile / name.replace(" ", ""), seconds)
    cpu, broker_cpu = _tree_cpu_s(servers), _cpu_s(broker)
    machine, started = _machine(), time.monotonic()
    out = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    elapsed = time.monotonic() - started
    cpu, broker_cpu = _tree_cpu_s(servers) - cpu, _cpu_s(broker) - broker_cpu
    busy, total = (now - then for now, then in zip(_machine(), machine, strict=True))
    if spy is not None:
        profiling.finish(spy)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m is not None, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    answered = rps * elapsed
    return Run(
        name,
        rps,
        p99,
        int(bad.group(1)) if bad else 0,
        server_cpu_ms=1000 * cpu / answered if answered else 0.0,
        broker_cores=broker_cpu / elapsed,
        machine_busy=busy / total if total else 0.0,
    )


def _serve(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(
    records: int,
    seconds: int,
    connections: int,
    profile: Path | None = None,
    workers: int = 2,
) -> list[Run]:
    """Each server measured in turn: stack, baseline, gateway of one process, then of
    ``workers`` processes each (workers > 1)."""
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: apt-get install wrk (tests/services/require-packages.sh does)"
        )
    bus, broker = given_or_embedded(os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS"))
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"broker {bus.bootstrap}; publishing {records} records of {POP} …", flush=True)
        asyncio.run(_prepare(bus, workdir, records))
        auth = "Basic " + base64.b64encode(f"hrss:{PASSWORD}".encode()).decode()
        script = workdir / "keys.lua"
        script.write_text(_LUA % {"keys": workdir / "keys.txt", "auth": auth})
        env = {**os.environ, **bus.environment(), "EXCHANGE_MASK_SECRET": "b" * 40}
        servers = _start_servers(workdir, env, records, workers, procs)
        results = []
        broker_pid = broker.process.pid if broker and broker.process else None
        for name, url, pids in servers:
            _wrk(url, script, 3, connections, name)  # warm-up
            results.append(
                _wrk(url, script, seconds, connections, name, (pids, broker_pid), profile)
            )
        return results
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _start_servers(
    workdir: Path,
    env: dict[str, str],
    records: int,
    workers: int,
    procs: list[subprocess.Popen[bytes]],
) -> list[tuple[str, str, list[int]]]:
    """Start every server measured; (name, URL, its process ids) in the order measured. Each
    gateway keeps its own store (one writer a file); the baselines read the first one's."""
    creds = workdir / "credentials"
    gateways = []
    for n in (1, workers) if workers > 1 else (1,):
        port, store = free_port(), workdir / f"store-{n}.sqlite"
        command = [sys.executable, "-m", "exchange", "gateway", "--port", str(port)]
        command += ["--credentials-dir", str(creds), "--store", str(store), "--workers", str(n)]
        procs.append(_serve(command, env))
        gateways.append((n, f"http://127.0.0.1:{port}", procs[-1]))
    for n, url, proc in gateways:
        _wait_healthy(url, proc, records, n)
    baseline = [sys.executable, "-m", "exchange.dev.gateway_baseline", "--reuse-port"]
    baseline += ["--credentials-dir", str(creds), "--catalog", str(CATALOG_DIR)]
    servers: list[tuple[str, str, list[int]]] = []
    for n, gw_url, gw_proc in gateways:
        suffix = f" x{n}" if n > 1 else ""
        for name, extra in (
            ("stack", []),
            ("baseline", ["--store", str(workdir / "store-1.sqlite")]),
        ):
            port, pids = free_port(), []
            for _ in range(n):
                procs.append(_serve([*baseline, "--port", str(port), *extra], env))
                pids.append(procs[-1].pid)
            _wait_healthy(f"http://127.0.0.1:{port}", procs[-1], None, n)
            servers.append((name + suffix, f"http://127.0.0.1:{port}", pids))
        servers.append(("gateway" + suffix, gw_url, [gw_proc.pid]))
    return servers


def report(results: list[Run], connections: int) -> str:
    """The table and the ratios: each gateway against the baseline with as many processes."""
    by = {r.name: r for r in results}
    lines = [
        f"wrk, 1 thread, {connections} connections, random keys; one run, same machine "
        "(xN: N server processes on one port)",
        f"{'':13} {'lookups/s':>10} {'p99 ms':>8} {'non-2xx':>8} {'server CPU ms/req':>18} "
        f"{'broker cores':>13} {'machine busy':>13}",
    ]
    for r in results:
        lines.append(
            f"{r.name:13} {r.rps:10.0f} {r.p99_ms:8.2f} {r.non_2xx:8d} {r.server_cpu_ms:18.3f} "
            f"{r.broker_cores:13.2f} {r.machine_busy:12.0%}"
        )
    best = by["gateway"]
    for gw in (r for r in results if r.name.startswith("gateway")):
        suffix = gw.name.removeprefix("gateway")
        base, stack = by["baseline" + suffix], by["stack" + suffix]
        lines += [
            f"{gw.name} / {base.name} throughput: {gw.rps / base.rps:.2f}; "
            f"p99: {gw.p99_ms / base.p99_ms:.2f}x; "
            f"CPU per request: {_ratio(gw.server_cpu_ms, base.server_cpu_ms)}x",
            f"{base.name} / {stack.name} throughput: {base.rps / stack.rps:.2f} (the stack: HTTP "
            "and authentication alone, the ceiling of any route on it)",
        ]
        if gw is not by["gateway"]:
            lines.append(f"{gw.name} / gateway throughput: {gw.rps / by['gateway'].rps:.2f}")
        best = gw
    lines += [
        f"{best.name}: target ≥ {TARGET_RPS:.0f} lookups/s: "
        f"{'met' if best.rps >= TARGET_RPS else 'NOT met'} ({best.rps / TARGET_RPS:.2f} of it); "
        f"p99 ≤ {TARGET_P99_MS:.0f} ms: {'met' if best.p99_ms <= TARGET_P99_MS else 'NOT met'}",
        f"X-Road (~{XROAD_RPS:.0f} requests/s through a pair of security servers): "
        f"{best.rps / XROAD_RPS:.0f}x that, every request audited",
    ]
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes of the multi-process gateway and of its baseline (default: one per "
        "core); 1 measures the one-process servers only",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each server with py-spy during its measured run: DIR/<name>.txt says "
        "where its time went, DIR/<name>.folded holds the stacks",
    )
    args = parser.parse_args()
    results = run(args.records, args.seconds, args.connections, args.profile, args.workers)
    print(report(results, args.connections))
    if args.profile is not None:
        print(f"profiles: {args.profile}/<server>.txt")


if __name__ == "__main__":
    main()

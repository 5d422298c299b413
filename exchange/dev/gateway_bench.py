"""Benchmark of the query gateway (接口调用) against a baseline measured in the same run.

``python -m exchange.dev.gateway_bench [--records N] [--seconds S] [--connections C]
[--workers W] [--rate R] [--against TREE [--rounds N]] [--profile DIR [--profile-cpu]]``

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
keys over C keep-alive connections, after a warm-up, in two ways:

* **paced** (the baselines and the gateways): wrk offers R lookups/s (default the target's
  2,000), one schedule spread over the C connections (a Lua ``delay()``, :data:`_PACED_LUA`),
  for S seconds. The row gives the rate achieved and p50/p99 at that load: the target's
  conditions. If the server falls behind, a connection sends late and wrk does not count
  the wait (coordinated omission): the row says how many sends left late and gives a
  bound of the p99 counting their waits;
* **closed loop** (every server): each connection asks again as soon as it is answered,
  for S seconds: the maximum. C requests are always in flight, so the mean latency is
  C / throughput, and its p99 is that of a saturated server.

Printed: rate and latencies of each, the CPU each server used per request (the figure the
other programs on a shared machine disturb least), the broker's CPU and how busy the
machine was, the ratios, the targets (≥ 2,000 lookups/s with p99 ≤ 20 ms, judged on the
paced row of the gateway with the most workers) and the comparison with X-Road's ~110
requests/s through a pair of security servers. With ``--against TREE``, each gateway has
a twin run from the source tree TREE (an earlier commit), measured right after it: CPU per
request before and after a change in the same run; with ``--rounds N`` too, each gateway
and its twin are measured N times, alternating which goes first, and each row is the round
of median CPU a request (two processes of one run differ by up to 6 % in CPU a request and
5x in paced p99 from round to round: one round says little about a change). With
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
from exchange.dev.proc_cpu import process_cpu_seconds
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

#: added to :data:`_LUA` for a paced run: one schedule for all connections, a send every
#: ``interval_ms``. wrk calls ``delay()`` when a connection is free to send its next request
#: (and before its first): the connection claims the next slot of the schedule and waits for
#: it. A connection free only after its slot (every connection busy: the server fell behind)
#: sends at once, late; wrk times a request from when it is sent, so the wait for a free
#: connection is not in its latency (coordinated omission). ``done`` prints how many sends
#: left more than 1 ms late and a bound of the p99 that counts their wait (:class:`Run`).
_PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval, next_at = %(interval_ms)r, nil
sends, late, late_max = 0, 0, 0
delay = function()
  local now = now_ms()
  if next_at == nil then next_at = now end
  local slot = next_at
  next_at = next_at + interval
  sends = sends + 1
  if slot >= now then return slot - now end
  local behind = now - slot
  if behind > 1 then late = late + 1 end
  if behind > late_max then late_max = behind end
  return 0
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function(summary, latency, requests)
  local s, l, m = 0, 0, 0
  for _, t in ipairs(threads) do
    s, l, m = s + t:get("sends"), l + t:get("late"), math.max(m, t:get("late_max"))
  end
  local share = s > 0 and l / s or 0
  local bound
  if share < 0.01 then
    bound = latency:percentile(99 + 100 * share) + 1000
  else
    bound = latency.max + m * 1000
  end
  io.write(string.format(
    "paced sends=%%d late=%%d late_max_ms=%%.1f p50_us=%%d p99_us=%%d bound_us=%%d\\n",
    s, l, m, latency:percentile(50), latency:percentile(99), bound))
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
    #: a paced run's offered rate (lookups/s); None: closed loop, each connection asks again
    #: as soon as it is answered (the maximum)
    offered: float | None = None
    p50_ms: float = 0.0
    #: a paced run's sends, those that left over 1 ms behind their schedule, the latest of
    #: them (ms), and the p99 counting their wait (an upper bound: if under 1% of the sends
    #: were late, at most that share of the latencies is too low, so the p99 of the
    #: latencies with the waits counted is at most the measured percentile 99 + that share,
    #: plus the 1 ms a send on time may lag; with 1% or more, the largest latency plus the
    #: latest send)
    sends: int = 0
    late: int = 0
    late_max_ms: float = 0.0
    p99_bound_ms: float = 0.0
    #: the rounds this row is the median of (``--rounds``), by CPU a request
    rounds: int = 1

    @property
    def paced(self) -> bool:
        return self.offered is not None

    @property
    def label(self) -> str:
        return f"{self.name} @{self.offered:.0f}/s" if self.offered is not None else self.name


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
    return sum(process_cpu_seconds(p) for pid in pids for p in _tree(pid))


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
    scripts: Path,
    seconds: int,
    connections: int,
    name: str,
    pids: tuple[list[int], int | None] = ([], None),
    profile: Path | None = None,
    rate: float | None = None,
    profile_idle: bool = True,
) -> Run:
    """wrk against ``url`` (served by the processes ``pids[0]`` and their children, broker
    ``pids[1]``): closed loop, or paced at ``rate`` lookups/s; with ``profile``, py-spy
    samples the first server process (and its children) meanwhile into that folder."""
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if rate is None:
        script = scripts / "keys.lua"
    else:
        script = scripts / f"paced-{rate:g}.lua"
        if not script.exists():
            lookups = (scripts / "keys.lua").read_text()
            script.write_text(lookups + _PACED_LUA % {"interval_ms": 1000.0 / rate})
    servers, broker = pids
    spy = None
    if profile is not None and servers:
        label = name if rate is None else f"{name} paced"
        stem = profile / label.replace(" ", "")
        spy = profiling.start(servers[0], stem, seconds, idle=profile_idle)
    cpu, broker_cpu = _tree_cpu_s(servers), process_cpu_seconds(broker)
    machine, started = _machine(), time.monotonic()
    out = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    elapsed = time.monotonic() - started
    cpu, broker_cpu = _tree_cpu_s(servers) - cpu, process_cpu_seconds(broker) - broker_cpu
    busy, total = (now - then for now, then in zip(_machine(), machine, strict=True))
    if spy is not None:
        profiling.finish(spy)
    run = parse_wrk(out, name, rate)
    answered = run.rps * elapsed
    run.server_cpu_ms = 1000 * cpu / answered if answered else 0.0
    run.broker_cores = broker_cpu / elapsed
    run.machine_busy = busy / total if total else 0.0
    return run


def median_rounds(runs: list[Run]) -> list[Run]:
    """One row per server and load, in the order first measured: for a server measured in
    several rounds, the round whose CPU a request is the median (the lower of the two middle
    ones for an even count), a real run with its own latencies, counted in ``rounds``."""
    by: dict[tuple[str, float | None], list[Run]] = {}
    for run in runs:
        by.setdefault((run.name, run.offered), []).append(run)
    rows = []
    for same in by.values():
        ranked = sorted(same, key=lambda r: r.server_cpu_ms)
        row = ranked[(len(ranked) - 1) // 2]
        row.rounds = len(same)
        rows.append(row)
    return rows


def parse_wrk(out: str, name: str, rate: float | None = None) -> Run:
    """A :class:`Run` from wrk's output (with ``--latency``; a paced run's ``done`` line)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50, p99 = (_wrk_ms(out, p) for p in ("50", "99"))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    run = Run(name, rps, p99, int(bad.group(1)) if bad else 0, offered=rate, p50_ms=p50)
    if rate is not None:
        m = re.search(
            r"paced sends=(\d+) late=(\d+) late_max_ms=([\d.]+) p50_us=\d+ p99_us=\d+ "
            r"bound_us=(\d+)",
            out,
        )
        assert m is not None, out
        run.sends, run.late, run.late_max_ms = int(m[1]), int(m[2]), float(m[3])
        run.p99_bound_ms = int(m[4]) / 1000
    return run


def _wrk_ms(out: str, percentile: str) -> float:
    m = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE)
    assert m is not None, out
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def _serve(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(
    records: int,
    seconds: int,
    connections: int,
    profile: Path | None = None,
    workers: int = 2,
    rate: float = TARGET_RPS,
    against: Path | None = None,
    profile_idle: bool = True,
    rounds: int = 1,
) -> list[Run]:
    """Each server measured in turn: stack, baseline, gateway of one process, then of
    ``workers`` processes each (workers > 1); the baselines and gateways first paced at
    ``rate`` lookups/s, then closed loop. With ``against`` and ``rounds`` > 1, each gateway
    and its twin are measured ``rounds - 1`` times more, the twin first every other round;
    their rows are then the rounds of median CPU a request (:func:`median_rounds`)."""
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
        (workdir / "keys.lua").write_text(_LUA % {"keys": workdir / "keys.txt", "auth": auth})
        env = {**os.environ, **bus.environment(), "EXCHANGE_MASK_SECRET": "b" * 40}
        servers = _start_servers(workdir, env, records, workers, procs, against)
        broker_pid = broker.process.pid if broker and broker.process else None

        def measure(name: str, url: str, pids: list[int], pace: float | None, spy: bool) -> Run:
            return _wrk(
                url,
                workdir,
                seconds,
                connections,
                name,
                (pids, broker_pid),
                profile if spy else None,
                pace,
                profile_idle,
            )

        results = []
        for name, url, pids in servers:
            _wrk(url, workdir, 3, connections, name)  # warm-up
            paces = [] if name.startswith("stack") else [rate]  # the target's rows
            results += [measure(name, url, pids, pace, True) for pace in [*paces, None]]
        if against is None or rounds <= 1:
            return results
        named = {name: (url, pids) for name, url, pids in servers}
        twins = [(n, "before " + n) for n in named if n.startswith("gateway")]
        for r in range(1, rounds):  # the twin first every other round
            for pair in twins:
                for name in pair if r % 2 == 0 else reversed(pair):
                    results += [measure(name, *named[name], pace, False) for pace in (rate, None)]
        return median_rounds(results)
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
    against: Path | None = None,
) -> list[tuple[str, str, list[int]]]:
    """Start every server measured; (name, URL, its process ids) in the order measured. Each
    gateway keeps its own store (one writer a file); the baselines read the first one's.
    With ``against`` (a source tree), each gateway has a twin run from that tree's
    ``exchange`` (``PYTHONPATH``), measured right after it: "before gateway"."""
    creds = workdir / "credentials"
    gateways = []
    trees: list[tuple[str, Path | None]] = [("", None)]
    if against is not None:
        trees.append(("before ", against))
    for n in (1, workers) if workers > 1 else (1,):
        for prefix, tree in trees:
            port, store = free_port(), workdir / f"store-{prefix.strip()}{n}.sqlite"
            command = [sys.executable, "-m", "exchange", "gateway", "--port", str(port)]
            command += ["--credentials-dir", str(creds), "--store", str(store)]
            command += ["--workers", str(n)]
            tree_env = env if tree is None else {**env, "PYTHONPATH": str(tree.resolve())}
            procs.append(_serve(command, tree_env))
            gateways.append((n, prefix, f"http://127.0.0.1:{port}", procs[-1]))
    for n, _prefix, url, proc in gateways:
        _wait_healthy(url, proc, records, n)
    baseline = [sys.executable, "-m", "exchange.dev.gateway_baseline", "--reuse-port"]
    baseline += ["--credentials-dir", str(creds), "--catalog", str(CATALOG_DIR)]
    servers: list[tuple[str, str, list[int]]] = []
    for n, prefix, gw_url, gw_proc in gateways:
        suffix = f" x{n}" if n > 1 else ""
        if prefix:
            servers.append((prefix + "gateway" + suffix, gw_url, [gw_proc.pid]))
            continue
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


#: a paced run keeps up with its offered rate if it achieves this share of it: wrk divides the
#: answers by its whole run (its start-up included) and leaves out those in flight at its end
KEPT_UP = 0.99

PACED_NOTE = """\
paced: wrk sends {rate:,.0f} lookups/s (the offered load), one schedule spread over the
{connections} connections: the target's conditions. "achieved" is what was answered per second
(below {kept:.0%} of the offered rate, the server did not keep up); the latencies are those at
that load. Coordinated omission: wrk times a request from when it leaves, so a send that
waited for a free connection (late: more than 1 ms behind its schedule, which happens only
when all {connections} are waiting on the server) does not count that wait; "p99 bound" does."""

CLOSED_NOTE = """\
closed loop (the maximum): each of the {connections} connections asks again as soon as it is
answered, so {connections} requests are always in flight and the mean latency is {connections} /
throughput: its p99 is that of a saturated server, not the latency at 2,000/s."""


def report(results: list[Run], connections: int) -> str:
    """The paced rows and the closed-loop rows, the ratios (each gateway against the baseline
    with as many processes), and the targets, judged on the paced rows."""
    paced = [r for r in results if r.paced]
    closed = {r.name: r for r in results if not r.paced}
    lines = [
        f"wrk, 1 thread, {connections} connections, random keys; one run, same machine "
        "(xN: N server processes on one port)",
    ]
    rounds = max(r.rounds for r in results)
    if rounds > 1:
        lines.append(
            f"each gateway and its 'before' twin: the round of median CPU a request of {rounds},"
            " alternating which went first"
        )
    if paced:
        rate = paced[0].offered or 0.0
        lines += [
            "",
            PACED_NOTE.format(rate=rate, connections=connections, kept=KEPT_UP),
            f"{'':20} {'achieved/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'p99 bound':>9} "
            f"{'late sends':>11} {'non-2xx':>7} {'server CPU ms/req':>17} {'broker cores':>12} "
            f"{'machine busy':>12}",
        ]
        for r in paced:
            late = f"{r.late}, {r.late_max_ms:.0f} ms" if r.late else "0"
            lines.append(
                f"{r.label:20} {r.rps:10.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
                f"{r.p99_bound_ms:9.2f} {late:>11} {r.non_2xx:7d} {r.server_cpu_ms:17.3f} "
                f"{r.broker_cores:12.2f} {r.machine_busy:11.0%}"
            )
    lines += [
        "",
        CLOSED_NOTE.format(connections=connections),
        f"{'':20} {'lookups/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} "
        f"{'server CPU ms/req':>17} {'broker cores':>12} {'machine busy':>12}",
    ]
    for r in closed.values():
        lines.append(
            f"{r.label:20} {r.rps:10.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.non_2xx:7d} "
            f"{r.server_cpu_ms:17.3f} {r.broker_cores:12.2f} {r.machine_busy:11.0%}"
        )
    lines.append("")
    best = closed["gateway"]
    for gw in (r for r in closed.values() if r.name.startswith("gateway")):
        suffix = gw.name.removeprefix("gateway")
        base, stack = closed["baseline" + suffix], closed["stack" + suffix]
        lines += [
            f"{gw.name} / {base.name} closed-loop throughput: {gw.rps / base.rps:.2f}; "
            f"p99: {gw.p99_ms / base.p99_ms:.2f}x; "
            f"CPU per request: {_ratio(gw.server_cpu_ms, base.server_cpu_ms)}x",
            f"{base.name} / {stack.name} closed-loop throughput: {base.rps / stack.rps:.2f} (the "
            "stack: HTTP and authentication alone, the ceiling of any route on it)",
        ]
        pg = next((r for r in paced if r.name == gw.name), None)
        pb = next((r for r in paced if r.name == base.name), None)
        if pg is not None and pb is not None:
            lines.append(
                f"{gw.name} / {base.name} paced: p99 {pg.p99_ms / pb.p99_ms:.2f}x; "
                f"CPU per request: {_ratio(pg.server_cpu_ms, pb.server_cpu_ms)}x"
            )
        if gw is not closed["gateway"]:
            lines.append(
                f"{gw.name} / gateway closed-loop throughput: {gw.rps / closed['gateway'].rps:.2f}"
            )
        old = closed.get("before " + gw.name)
        if old is not None:
            po = next((r for r in paced if r.name == old.name), None)
            lines.append(
                f"{gw.name} / {old.name} CPU per request: closed loop "
                f"{_ratio(gw.server_cpu_ms, old.server_cpu_ms)}x"
                + (
                    f", paced {_ratio(pg.server_cpu_ms, po.server_cpu_ms)}x"
                    if pg is not None and po is not None
                    else ""
                )
                + f"; closed-loop throughput {gw.rps / old.rps:.2f}"
            )
        best = gw
    lines += [*verdict(best, next((r for r in paced if r.name == best.name), None))]
    lines.append(
        f"X-Road (~{XROAD_RPS:.0f} requests/s through a pair of security servers): the closed-"
        f"loop maximum is {best.rps / XROAD_RPS:.0f}x that, every request audited"
    )
    return "\n".join(lines)


def verdict(closed: Run, paced: Run | None) -> list[str]:
    """The targets (≥ 2,000 lookups/s with p99 ≤ 20 ms), judged at the offered load."""
    rate_ok = "met" if closed.rps >= TARGET_RPS else "NOT met"
    lines = [
        f"{closed.name}, closed loop: {closed.rps:,.0f} lookups/s at most ({rate_ok}: "
        f"{closed.rps / TARGET_RPS:.2f} of {TARGET_RPS:,.0f}), p99 {closed.p99_ms:.1f} ms at "
        "saturation"
    ]
    if paced is None:
        return [*lines, "target: not judged (no paced run at the target's rate)"]
    offered = paced.offered or 0.0
    kept = paced.rps >= KEPT_UP * offered and offered >= TARGET_RPS
    # judged on the bound: a p99 within 20 ms only because late sends' waits went uncounted
    # does not meet it
    fast = paced.p99_bound_ms <= TARGET_P99_MS
    lines.append(
        f"{paced.label}: target ≥ {TARGET_RPS:,.0f} lookups/s with p99 ≤ {TARGET_P99_MS:.0f} ms: "
        f"{'met' if kept and fast else 'NOT met'} (achieved {paced.rps:,.0f}/s, "
        f"{paced.rps / offered:.3f} of the offered rate; p99 {paced.p99_ms:.1f} ms, "
        f"{paced.p99_bound_ms:.1f} ms counting the waits of {paced.late} late sends)"
    )
    return lines


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
    parser.add_argument(
        "--profile-cpu",
        action="store_true",
        help="with --profile: sample threads only while they run on a CPU, so that the "
        "shares are of CPU time (by default waiting threads are sampled too: wall time)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_RPS,
        help="the offered load of the paced rows, lookups/s (default: the target's 2,000)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="also measure each gateway as run from the source tree TREE (an earlier commit, "
        "e.g. from git worktree add or git archive), right after it in the same run: the "
        "'before gateway' rows and the ratios of CPU per request",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="N",
        help="with --against: measure each gateway and its twin N times, alternating which "
        "goes first, and report the round of median CPU a request (default: 1)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    if args.rounds > 1 and args.against is None:
        parser.error("--rounds is for --against: the rounds alternate a gateway and its twin")
    results = run(
        args.records,
        args.seconds,
        args.connections,
        args.profile,
        args.workers,
        args.rate,
        args.against,
        not args.profile_cpu,
        args.rounds,
    )
    print(report(results, args.connections))
    if args.profile is not None:
        print(f"profiles: {args.profile}/<server>.txt")


if __name__ == "__main__":
    main()

"""Sampling a benchmark's server process with py-spy, and where its time went.

Used by ``python -m exchange.dev.gateway_bench --profile DIR``: py-spy (``pip install
py-spy``, not a dependency of the bus) samples the server for the measured run, idle
frames included, and writes ``<name>.folded`` (collapsed stacks: flame-graph tools read
them) and ``<name>.txt``: the functions holding the most samples, inclusive (the
function or anything it called) and self (the function itself was running).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 250
TOP = 30


@dataclass
class Spy:
    process: subprocess.Popen[bytes]
    stem: Path
    idle: bool = True


def start(pid: int, stem: Path, seconds: int, *, idle: bool = True) -> Spy:
    """Sample ``pid`` (and its child processes: a gateway's workers) for ``seconds`` into
    ``<stem>.folded`` (in the background). ``idle``: threads waiting (on a lock, a socket, a
    disk) are sampled too, so the shares are of wall time; without it, only threads py-spy
    takes as running are, so the shares are close to the process's CPU time. py-spy judges by
    the system call a thread is in: one blocked on a lock, a queue or a disk sync can still
    count as running (a thread pool's idle ``work_queue.get`` did)."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy on the PATH: pip install py-spy")
    stem.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--pid", str(pid), "--duration", str(seconds)]
    command += [
        "--rate",
        str(RATE_HZ),
        *(["--idle"] if idle else []),
        "--nonblocking",
        "--subprocesses",
        "--format",
        "raw",
    ]
    process = subprocess.Popen(
        [*command, "--output", str(stem.with_suffix(".folded"))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Spy(process, stem, idle)


def finish(spy: Spy) -> Path:
    """Wait for the sampler; write and return ``<stem>.txt``, the summary."""
    spy.process.wait(60)
    folded = spy.stem.with_suffix(".folded")
    summary = spy.stem.with_suffix(".txt")
    summary.write_text(summarize(folded.read_text() if folded.exists() else "", spy.idle))
    return summary


def summarize(folded: str, idle: bool = True) -> str:
    """The top functions of collapsed stacks, inclusive and self, in % of all samples."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if total == 0:
        return "no samples (was py-spy allowed to attach? it needs ptrace)\n"
    kind = "idle frames included" if idle else "on a CPU only"
    lines = [f"{total} samples at {RATE_HZ} Hz, {kind}", "", "inclusive:"]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in inclusive.most_common(TOP)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in leaf.most_common(TOP)]
    return "\n".join(lines) + "\n"

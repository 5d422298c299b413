"""What signed chain heads and record-key hashes cost the router: throughput, on vs off.

One router, the ``exchange bench`` set-up (the bench catalog, three views of
one resource: full, masked projection, row-filtered), a backlog of
``--records`` source records routed again and again (rewound, the same group)
in alternating runs, best of ``--rounds`` each, all in the same run:

* baseline: no head signing, and the record-key hashes (``key_hashes`` of the
  delivery entries, for ``exchange audit trace``) left out;
* signing at the default cadence (every 1,000 entries and every 5 s);
* signing at a stress cadence (every ``--stress-every`` entries);
* record-key hashes on (what every router does), signing off.

Prints, for each, records/s (wall clock) and records per CPU second of this
process (the router's own work: the broker runs in another process), best of
the rounds, and their ratios to the baseline. On a machine shared with other
work the wall-clock figure swings by tens of percent between runs of one mode;
the CPU figure is what the 2 % target is checked on (signing at the default
cadence: a ratio of at least 0.98). The order of the modes rotates every round.
First, the cost of a signed head against that of an ordinary entry, measured alike
(a ratio that load does not move)::

    python benchmarks/audit_signing.py [--records 30000] [--rounds 3]

The embedded broker is started for the run (or EXCHANGE_BOOTSTRAP_SERVERS is used).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

from exchange.audit.entry import GENESIS_HASH, Action, AuditEntry, Decision, Draft
from exchange.audit.heads import DEFAULT_EVERY_ENTRIES, DEFAULT_EVERY_S, HeadSigner
from exchange.audit.key_hash import KeyHasher
from exchange.dev import bench
from exchange.router.loop import Router


class _NoKeyHashes(KeyHasher):
    """The baseline: delivery entries without ``key_hashes``."""

    def details(self, resource: str, delivered: Any, cache: Any = None) -> str:
        return ""


async def measure(records: int, rounds: int, stress_every: int) -> dict[str, tuple[float, float]]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    default = HeadSigner("gov-router-1", key, DEFAULT_EVERY_ENTRIES, DEFAULT_EVERY_S)
    stress = HeadSigner("gov-router-1", key, stress_every, DEFAULT_EVERY_S)
    on = bench.embedded_or_given(print)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s = await bench._setup(on, Path(tmp), 2000)
            await bench._preload(s, records)
            router = Router(
                s.router,
                group=f"{bench.GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
                master_secret=bench.SECRET,
                session_timeout_ms=s.session_ms,
                trace_key=b"benchmark trace key, 32+ characters long",
            )
            await router.start()
            try:
                return await _alternate(router, records, rounds, default, stress)
            finally:
                await router.stop()
    finally:
        if on.stop is not None:
            on.stop()


async def _drain(router: Router, records: int) -> tuple[float, float]:
    """(records/s wall clock, records per CPU second of this process) of one run."""
    cpu = time.process_time()
    wall = await bench._drain(router, records)
    return wall, records / max(time.process_time() - cpu, 1e-9)


async def _alternate(
    router: Router, records: int, rounds: int, default: HeadSigner, stress: HeadSigner
) -> dict[str, tuple[float, float]]:
    assert router.audit is not None
    assert router._routing is not None
    hashing = router._routing.key_hasher
    modes: dict[str, tuple[HeadSigner | None, KeyHasher]] = {
        "baseline (no signing, no key hashes)": (None, _NoKeyHashes(None)),
        "signing, every 1,000 entries / 5 s": (default, _NoKeyHashes(None)),
        f"signing, every {stress.every_entries} entries": (stress, _NoKeyHashes(None)),
        "record-key hashes (trace), no signing": (None, hashing),
    }
    best = dict.fromkeys(modes, (0.0, 0.0))
    names = list(modes)
    first = True
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            router.audit.signer, router._routing.key_hasher = modes[name]
            if not first:
                await router.rewind()
            first = False
            wall, cpu = await _drain(router, records)
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu))
    return best


def head_cost(every: int, n: int = 3000) -> tuple[float, float]:
    """(µs to seal and encode a delivery entry, µs for a signed head), measured alike."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = HeadSigner("gov-router-1", Ed25519PrivateKey.generate(), every)
    details = {"record_count": "10", "offsets": "100-109", "fields": "a,b,c", "partition": "0"}
    draft = Draft(Action.RECORDS_DELIVERED, actor="router", decision=Decision.DELIVERED,
                  resource="r", consumer="c", details=details)  # fmt: skip
    prev = AuditEntry.seal(draft, writer="w", seq=0, prev_hash=GENESIS_HASH, instance="i")

    def entry() -> None:
        AuditEntry.seal(draft, writer="w", seq=1, prev_hash=prev.hash, instance="i").encode()

    def head() -> None:
        d = signer.draft(prev)
        AuditEntry.seal(d, writer="w", seq=1, prev_hash=prev.hash, instance="i").encode()

    best_entry = min(timeit.repeat(entry, number=n, repeat=5)) / n * 1e6
    best_head = min(timeit.repeat(head, number=n, repeat=5)) / n * 1e6
    return best_entry, best_head


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=30_000, help="records routed in each run")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each mode (best counts)")
    ap.add_argument("--stress-every", type=int, default=10)
    args = ap.parse_args()
    entry_us, head_us = head_cost(DEFAULT_EVERY_ENTRIES)
    print(
        f"an audit entry sealed and encoded: {entry_us:.1f} µs; a signed head: {head_us:.1f} µs "
        f"({head_us / entry_us:.2f} entries); at one head per {DEFAULT_EVERY_ENTRIES:,} entries "
        f"the audit writer does {head_us / entry_us / DEFAULT_EVERY_ENTRIES * 100:.2f} % more work"
    )
    best = asyncio.run(measure(args.records, args.rounds, args.stress_every))
    wall0, cpu0 = next(iter(best.values()))
    print(f"\n{'mode':<40} {'records/s':>10} {'ratio':>7} {'rec/CPU-s':>10} {'ratio':>7}")
    for name, (wall, cpu) in best.items():
        print(f"{name:<40} {wall:>10,.0f} {wall / wall0:>6.3f}x {cpu:>10,.0f} {cpu / cpu0:>6.3f}x")
    default = list(best.values())[1][1] / cpu0
    print(
        f"\nsigning overhead at the default cadence, in router CPU per record: "
        f"{(1 - default) * 100:.1f} % (target <= 2 %)"
    )
    return 0 if default >= 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())

"""`exchange bench --engine kafka` still works: every row at a tiny size on a 1-node cluster.

Not a performance test (figures at this size mean nothing): it checks that the bench
starts its own Apache Kafka cluster, gives every role its own user and ACLs (a refused
request would fail the run), measures each row beside its baseline, says which engine
in the rows and the JSON, and stops the cluster. The figures come from
`exchange bench --engine kafka --nodes 3` (README, "Sizing").
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from exchange.dev.bench import TINY, Sizes, format_rows, run_bench, write_json

pytestmark = [
    pytest.mark.integration,
    # in the Kafka lane, which ends before the embedded one (see the README's Tests section)
    pytest.mark.kafka_only("starts an Apache Kafka cluster of its own: run once, in this lane"),
]

#: smaller still than the embedded smoke run: the fixed waits (cluster start, group joins,
#: router processes) are what takes the time
# 100 grants, not 3,600: each is a delivery topic, and a 1-node Kafka on a busy 2-core
# machine makes about 90 topics a second (3,600 would take the test's whole time)
KAFKA_TINY = Sizes(
    records=1_000, distinct=50, latency_s=1, rounds=1, backlog=1_000, quick=True, grants=100
)


@pytest.mark.timeout(240)
async def test_every_row_is_measured_on_kafka(
    kafka_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXCHANGE_BOOTSTRAP_SERVERS", raising=False)
    assert KAFKA_TINY.records <= TINY.records
    lines: list[str] = []
    began = time.monotonic()
    rows = await run_bench(quick=True, echo=lines.append, sizes=KAFKA_TINY, engine="kafka")
    print(f"\nbench on a 1-node Kafka at a tiny size: {time.monotonic() - began:.1f} s")
    print("\n".join(lines))
    assert [r.name.split(" ")[0] for r in rows] == [
        "1.", "1.", "2.", "2.", "3.", "4.", "4.", "4.", "4.", "5.", "6.",
    ]  # fmt: skip
    assert {r.engine for r in rows} == {"kafka"}
    for r in rows:
        assert r.value >= 0, r
        if r.baseline is not None:
            assert r.baseline > 0, r
            assert r.ratio == pytest.approx(r.value / r.baseline), r
    assert any("Apache Kafka" in line and "node(s) started" in line for line in lines)
    assert any("each role its own user" in line for line in lines)
    assert "kafka" in format_rows(rows)
    write_json(rows, tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {d["engine"] for d in data} == {"kafka"}
    # the throwaway cluster is gone: no JVM of it is left running
    cluster_dirs = [line for line in lines if "throwaway, in " in line]
    assert cluster_dirs
    where = cluster_dirs[0].split("throwaway, in ")[1].rstrip(")")
    assert not _left_behind(where), "the throwaway cluster is still there"


def _left_behind(where: str) -> list[str]:
    """The cluster's directory if it still exists, and the pids of processes started in it."""
    here = [where] if Path(where).exists() else []
    return here + [
        proc.name
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit() and where.encode() in _cmdline(proc)
    ]


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""

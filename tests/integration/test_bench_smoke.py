"""`exchange bench` still works: every measure at a tiny size, on its own embedded broker.

Not a performance test (figures at this size mean nothing): it checks that each row is
measured, is a positive number beside its baseline, and that the JSON is what the
README promises. The benchmark itself is `exchange bench [--quick]`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.dev import bench_backfill
from exchange.dev.bench import TINY, format_rows, run_bench, write_json

pytestmark = [
    pytest.mark.integration,
    pytest.mark.embedded_only(
        "measures on an embedded broker of its own; the Kafka figures come from exchange bench --engine kafka"
    ),
]


@pytest.mark.timeout(240)
async def test_every_row_is_measured_at_a_tiny_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # always on an embedded broker of its own, even when the suite runs on a real Kafka:
    # the bench loads a catalog of its own, which would replace the one in force there
    monkeypatch.delenv("EXCHANGE_BOOTSTRAP_SERVERS", raising=False)
    lines: list[str] = []
    rows = await run_bench(quick=True, echo=lines.append, sizes=TINY, extra=bench_backfill.rows)
    assert [r.name.split(" ")[0] for r in rows] == [
        "1.", "1.", "2.", "2.", "3.", "4.", "4.", "4.", "4.", "5.", "6.", "7.", "7.", "7.", "7.",
    ]  # fmt: skip
    for r in rows:
        assert r.value >= 0, r
        if r.baseline is not None:
            assert r.baseline > 0, r
            assert r.ratio == pytest.approx(r.value / r.baseline), r
    assert all(r.value > 0 for r in rows if r.unit in ("records/s", "ms", "MB")), rows
    assert any(line.endswith("measuring throughput") for line in lines)
    table = format_rows(rows)
    assert "routing throughput" in table
    assert "baseline" in table
    write_json(rows, tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert len(data) == len(rows)
    assert set(data[0]) == {
        "name", "value", "unit", "baseline", "ratio", "target", "met", "engine",
    }  # fmt: skip
    assert {d["engine"] for d in data} == {"embedded"}

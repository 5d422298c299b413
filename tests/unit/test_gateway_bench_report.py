"""The gateway benchmark's report and its profile summary (the measuring itself runs wrk)."""

from __future__ import annotations

from exchange.dev import profiling
from exchange.dev.gateway_bench import Run, report


def test_the_report_gives_the_ratios_against_the_baseline_and_the_stack() -> None:
    runs = [
        Run("stack", 3000.0, 15.0, 0, server_cpu_ms=0.3, broker_cores=0.0, machine_busy=0.8),
        Run("baseline", 2000.0, 20.0, 0, server_cpu_ms=0.4, broker_cores=0.0, machine_busy=0.9),
        Run("gateway", 1000.0, 50.0, 3, server_cpu_ms=0.8, broker_cores=0.1, machine_busy=1.0),
    ]
    text = report(runs, 32)
    assert "gateway / baseline throughput: 0.50; p99: 2.50x; CPU per request: 2.00x" in text
    assert "baseline / stack throughput: 0.67" in text
    assert "gateway: target ≥ 2000 lookups/s: NOT met (0.50 of it); p99 ≤ 20 ms: NOT met" in text
    assert "gateway             1000    50.00        3              0.800" in text


def test_a_gateway_of_n_workers_is_compared_with_a_baseline_of_n_processes() -> None:
    runs = [
        Run("stack", 3000.0, 15.0, 0),
        Run("baseline", 2000.0, 20.0, 0),
        Run("gateway", 1000.0, 50.0, 0, server_cpu_ms=0.8),
        Run("stack x2", 5000.0, 10.0, 0),
        Run("baseline x2", 3000.0, 12.0, 0, server_cpu_ms=0.4),
        Run("gateway x2", 2100.0, 18.0, 0, server_cpu_ms=0.8),
    ]
    text = report(runs, 32)
    assert "gateway x2 / baseline x2 throughput: 0.70; p99: 1.50x; CPU per request: 2.00x" in text
    assert "baseline x2 / stack x2 throughput: 0.60" in text
    assert "gateway x2 / gateway throughput: 2.10" in text
    assert "gateway x2: target ≥ 2000 lookups/s: met (1.05 of it); p99 ≤ 20 ms: met" in text
    assert "X-Road (~110 requests/s through a pair of security servers): 19x that" in text


def test_a_profile_summary_counts_each_function_once_per_stack() -> None:
    folded = "main (a.py:1);work (a.py:5);work (a.py:5) 3\nmain (a.py:1);idle (b.py:2) 1\nbad\n"
    text = profiling.summarize(folded)
    assert text.startswith("4 samples")
    assert " 100.0%  main (a.py:1)" in text
    assert "  75.0%  work (a.py:5)" in text  # inclusive: once per stack, not per frame
    assert profiling.summarize("").startswith("no samples")

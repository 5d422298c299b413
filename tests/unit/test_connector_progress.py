"""A first load's progress: rate over recent batches, time left, the terminal's status line."""

from __future__ import annotations

import io

from connectors.base import Progress
from connectors.display import StatusLine


def test_rate_and_time_left_come_from_recent_batches() -> None:
    p = Progress(estimated_total=1_000_000, state="running")
    for second in range(0, 101, 10):  # 2,000 rows/s for 100 s
        p.rows_read = second * 2000
        p.sample(float(second))
    assert p.rate(now=100.0) == 2000
    assert p.remaining() == 800_000
    assert p.eta(now=100.0) == "200,000 of ~1,000,000 rows (20%), 2,000 rows/s, 6 min 40 s left"
    p.estimated_total = 50_000_000
    assert p.eta(now=100.0).endswith("6 h 55 min left")


def test_more_rows_than_the_estimate_shows_the_rows_read() -> None:
    p = Progress(estimated_total=100, rows_read=130, state="running")
    assert p.eta() == "130 of ~130 rows (100%)"


def test_no_estimate_no_first_load_figures() -> None:
    p = Progress(state="running")
    p.rows_read = 10
    assert "first load" not in p.line("src")
    assert p.status("src") == "[src] running, read 10, moved 0"


def test_status_line_is_redrawn_in_place_and_other_lines_go_above_it() -> None:
    out = io.StringIO()
    status = StatusLine(out)
    status.show("[src] first load 10 of ~100 rows (10%)")
    status.echo("[src] note: something")
    status.clear()
    assert out.getvalue() == (
        "\r\x1b[K[src] first load 10 of ~100 rows (10%)"
        "\r\x1b[K[src] note: something\n[src] first load 10 of ~100 rows (10%)"
        "\r\x1b[K"
    )

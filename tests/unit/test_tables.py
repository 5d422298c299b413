"""Text tables fit the terminal: the last column wraps, or goes under each row."""

from __future__ import annotations

import pytest

from exchange.tables import fitted, table, width, wrap

HEADERS = ["at", "action", "actor", "resource", "decision", "details"]
ROW = [
    "2026-11-30 05:40:12",
    "RECORDS_DELIVERED",
    "router",
    "birth_medical_certificate",
    "delivered",
    "consumer=police grant_id=GR-20261130-ab12cd34 purpose=新生儿落户 newborn household "
    "registration fields=" + ",".join(f"field_{i}" for i in range(40)),
]
SHORT = ["2026-11-30 05:41:00", "COMMAND_REFUSED", "police", "population_basic", "refused", "x=1"]


@pytest.mark.parametrize("limit", [60, 80, 100, 140, 200])
def test_no_line_is_wider_than_the_terminal(limit: int) -> None:
    out = fitted([ROW, SHORT], HEADERS, limit)
    assert max(width(line) for line in out.splitlines()) <= limit
    assert "2026-11-30 05:40:12" in out  # the first column is never clipped
    assert "x=1" in out
    assert "新生儿落户" in out
    assert "…" in out  # the 40 fields do not fit in three lines


def test_a_table_that_fits_is_left_as_it_is() -> None:
    assert fitted([SHORT], HEADERS, 200) == table([SHORT], HEADERS)


def test_wrap_breaks_at_spaces_counts_chinese_as_two_and_marks_a_cut() -> None:
    assert wrap("aaa bbb ccc", 7, 3) == ["aaa bbb", "ccc"]
    assert wrap("中文中文 ab", 8, 3) == ["中文中文", "ab"]
    assert wrap("x" * 25, 10, 3) == ["x" * 10, "x" * 10, "x" * 5]
    cut = wrap("one two three four five six", 9, 2)
    assert cut[0] == "one two"
    assert cut[-1].endswith("…")
    assert all(width(line) <= 9 for line in cut)

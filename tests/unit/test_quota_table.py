"""The quota table the gateway's workers share: counts in one file, slots found and reused."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from exchange.gateway import quota_table
from exchange.gateway.quota import OverQuota, Quotas
from exchange.gateway.quota_table import Counts, QuotaTable, QuotaTableError
from exchange.sharing.records import Grant

T0 = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
GRANT = Grant("GR-t", "APP-t", "hrss", "population_basic", ("name",), "p", None, {}, None, T0)
NOW = 1_800_000_000.25


def test_two_tables_on_one_file_count_together(tmp_path: Path) -> None:
    """What two workers see: each opens the file; a grant's quota is theirs together."""
    path = tmp_path / "gw.sqlite.quotas"
    first, second = Quotas(path), Quotas(path)
    limited = replace(GRANT, quota_per_day=3)
    first.take(limited, NOW)
    second.take(limited, NOW + 1)
    first.take(limited, NOW + 2)
    with pytest.raises(OverQuota, match="3 requests per day"):
        second.take(limited, NOW + 3)
    with pytest.raises(OverQuota):
        first.take(limited, NOW + 3)


def test_the_count_outlasts_a_restart_and_a_file_of_another_format_starts_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.quotas"
    limited = replace(GRANT, quota_per_day=2)
    before = Quotas(path)
    before.take(limited, NOW)
    before.take(limited, NOW)
    before.close()
    with pytest.raises(OverQuota):
        Quotas(path).take(limited, NOW + 5)  # a restart keeps the day's count
    path.write_bytes(b"not a quota table")
    Quotas(path).take(limited, NOW + 6)  # unreadable: counted afresh
    assert path.stat().st_size == quota_table.SIZE


def test_a_slot_of_a_past_day_is_reused_and_a_full_table_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quota_table, "SLOTS", 4)
    table = QuotaTable()

    def on_day_100(c: Counts) -> None:
        c.day, c.in_day = 100, c.in_day + 1

    for i in range(4):
        table.update(f"GR-{i}", 100, on_day_100)
    with pytest.raises(QuotaTableError, match="is full"):
        table.update("GR-new", 100, on_day_100)  # every slot is today's or yesterday's
    found: list[Counts] = []
    table.update("GR-new", 102, lambda c: found.append(replace(c)))  # day 100 is over
    assert found[0].day == 100  # a past day's slot, taken over (Quotas starts its counts anew)

    def mark(c: Counts) -> None:
        c.day, c.in_day = 102, 7

    table.update("GR-new", 102, mark)
    table.update("GR-new", 102, lambda c: found.append(replace(c)))
    assert (found[1].day, found[1].in_day) == (102, 7)  # its own slot from now on

"""One stated rule for an expiry, in the CLI and the API (issue 23 item 6)."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from exchange import beijing
from exchange.beijing import CHINA_TZ, EXPIRY_RULE, ExpiryError
from exchange.cli import app
from exchange.errors import CommandRefused
from exchange.sharing.limits import check_until

END_OF_2026 = dt.datetime(2027, 1, 1, tzinfo=CHINA_TZ)


def test_a_date_is_valid_through_the_end_of_that_beijing_day() -> None:
    assert beijing.expiry("2026-12-31") == END_OF_2026
    assert beijing.expiry(dt.date(2026, 12, 31)) == END_OF_2026  # the API's date alike


def test_a_timestamp_with_its_zone_is_that_instant() -> None:
    assert beijing.expiry("2026-12-31T18:00+08:00") == dt.datetime(
        2026, 12, 31, 18, tzinfo=CHINA_TZ
    )
    assert beijing.expiry("2026-12-31T10:00Z") == dt.datetime(2026, 12, 31, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize("text", ["2026-12-31T18:00", "2026-12-31 18:00:00"])
def test_a_time_without_a_zone_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(ExpiryError, match="no time zone"):
        beijing.expiry(text)
    with pytest.raises(CommandRefused, match="no time zone"):  # the API: the same rule
        check_until(dt.datetime.fromisoformat(text))


def test_the_cli_follows_the_rule_and_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGE_BOOTSTRAP_SERVERS", raising=False)
    args = ["approve", "APP-1", "--as", "health", "--bootstrap-servers", "127.0.0.1:1"]
    result = CliRunner().invoke(app, [*args, "--until", "2026-12-31T18:00"])
    assert result.exit_code == 2
    assert "no time zone" in result.stderr
    assert EXPIRY_RULE in " ".join(result.stderr.split())
    bad = CliRunner().invoke(app, [*args, "--until", "end of year"])
    assert bad.exit_code == 2
    assert "is not an expiry" in bad.stderr
    shown = " ".join(CliRunner().invoke(app, ["approve", "--help"]).stdout.split())
    for form in ("YYYY-MM-DD", "2026-12-31T18:00+08:00", "without a zone is refused"):
        assert form in shown

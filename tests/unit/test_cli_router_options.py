"""`exchange router` refuses a session timeout outside what Kafka accepts, before starting."""

from __future__ import annotations

from typer.testing import CliRunner

from exchange.cli import app


def test_a_session_timeout_under_a_second_is_refused() -> None:
    result = CliRunner().invoke(app, ["router", "--session-timeout-ms", "500"])
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert "Invalid value for '--session-timeout-ms'" in text
    assert "greater than or equal to 1000" in text

"""The command line imports a command's dependencies only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exchange.cli import lazy

HEAVY = ("aiokafka", "fastavro", "pydantic", "cryptography", "cel", "exchange.clients.department")


def _modules_after(args: list[str]) -> set[str]:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from exchange.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "print('\\n'.join(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_help_imports_no_kafka_avro_or_pydantic() -> None:
    loaded = _modules_after(["--help"])
    assert "exchange.cli" in loaded
    assert not [m for m in HEAVY if m in loaded]


def test_a_command_imports_only_its_own_module() -> None:
    loaded = _modules_after(["keys", "--help"])
    assert "exchange.cli.keys" in loaded
    assert "exchange.cli.sharing" not in loaded
    assert "aiokafka" not in loaded


@pytest.mark.parametrize("name", list(lazy.COMMANDS))
def test_root_help_line_is_the_commands_own(name: str) -> None:
    command = lazy.load(name)
    own = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
    assert lazy.COMMANDS[name].help == own

"""deploy/README.md: every ``exchange`` command of the runbook is one the CLI accepts.

Each ``exchange ...`` line of the runbook's ``sh`` blocks (continuations joined,
environment assignments and redirections left out, shell variables given a
value) is parsed by the CLI with ``--help`` appended, which fails on a command
or an option that does not exist: the runbook cannot drift from the code.
"""

from __future__ import annotations

import re
import shlex

from deploy_support import DEPLOY
from typer.testing import CliRunner

from exchange.cli import app

SHELL_OPERATORS = {">", ">>", "|", "&&", "||", ";", "2>&1"}


def runbook_commands(text: str) -> list[list[str]]:
    """The argument lists of the ``exchange`` commands in the text's ``sh`` blocks."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\$\{?(\w+)\}?", r"VALUE_OF_\1", line)
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)  # VAR=value before the command
            if not words or words[0] not in ("exchange", "/opt/gov-exchange/bin/exchange"):
                continue
            args = []
            for word in words[1:]:
                if word in SHELL_OPERATORS:
                    break
                args.append(word)
            found.append(args)
    return found


def test_every_exchange_command_of_the_runbook_is_one_the_cli_accepts() -> None:
    commands = runbook_commands((DEPLOY / "README.md").read_text())
    assert len(commands) >= 6
    assert ["keys", "generate", "--as", "VALUE_OF_s", "--out", "VALUE_OF_s.pem"] in commands
    for args in commands:
        done = CliRunner().invoke(app, [*args, "--help"])
        assert done.exit_code == 0, f"deploy/README.md: exchange {' '.join(args)}: {done.output}"


def test_a_drifted_command_would_be_caught() -> None:
    text = "```sh\nEXCHANGE_X=1 exchange acls --catalog c --aply > out.sh  # a typo\n```\n"
    (args,) = runbook_commands(text)
    assert args == ["acls", "--catalog", "c", "--aply"]
    assert CliRunner().invoke(app, [*args, "--help"]).exit_code != 0

"""deploy/systemd/: verified by systemd itself, hardened, and running commands that exist.

``systemd-analyze verify`` (Debian's systemd) loads every unit, templates
instantiated, with ``/opt/gov-exchange/bin/exchange`` pointed at this
checkout's ``exchange``: any warning (an unknown key, a value it cannot parse,
a command it cannot run) fails. ``systemd-analyze security --offline`` rates
each service's exposure; every ``exchange`` command line is parsed by the CLI
with ``--help`` appended, which fails on an option the command does not have.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from deploy_support import DEPLOY, run, tool
from typer.testing import CliRunner

from exchange.cli import app

SYSTEMD = DEPLOY / "systemd"
INSTALLED = "/opt/gov-exchange/bin/exchange"
#: template -> the instance the test loads
INSTANCES = {
    "gov-exchange-router@.service": "gov-exchange-router@1.service",
    "gov-exchange-connector@.service": "gov-exchange-connector@health.service",
    "gov-exchange-kafka@.service": "gov-exchange-kafka@1.service",
}
HARDENING = (
    "DynamicUser=yes",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=",
)
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 (locked down) to 10 (unprotected)


def exchange_script() -> str:
    beside = Path(sys.executable).with_name("exchange")
    found = str(beside) if beside.exists() else shutil.which("exchange")
    assert found, "the exchange command is not installed (pip install -e .)"
    return found


def units() -> list[Path]:
    return sorted(p for p in SYSTEMD.iterdir() if p.suffix in (".service", ".target"))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The units as systemd-analyze loads them: this checkout's exchange, templates instantiated."""
    folder = tmp_path_factory.mktemp("systemd")
    out = []
    for unit in units():
        text = unit.read_text().replace(INSTALLED, exchange_script())
        path = folder / INSTANCES.get(unit.name, unit.name)
        path.write_text(text)
        out.append(path)
    return out


def test_systemd_analyze_verify_accepts_every_unit(loaded: list[Path]) -> None:
    done = run([tool("systemd-analyze"), "verify", "--man=no", *map(str, loaded)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_verify_would_catch_a_misspelt_key(tmp_path: Path, loaded: list[Path]) -> None:
    router = next(p for p in loaded if p.name.startswith("gov-exchange-router@"))
    bad = tmp_path / router.name
    bad.write_text(router.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    done = run([tool("systemd-analyze"), "verify", "--man=no", str(bad)])
    assert "Unknown key 'ProtectSytem'" in done.stderr


def test_every_service_is_hardened_and_gets_its_secrets_as_credentials(
    loaded: list[Path],
) -> None:
    for path in loaded:
        if path.suffix != ".service":
            continue
        text = path.read_text()
        for line in HARDENING:
            assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{path.name} lacks {line}"
        assert "PASSWORD=" not in text, path.name
        assert "MASK_SECRET=" not in text, path.name
        if "kafka" not in path.name:  # the Kafka nodes' secrets are in their own config
            assert "LoadCredential=sasl-password:" in text, path.name
            assert "EXCHANGE_SASL_PASSWORD_FILE=%d/sasl-password" in text, path.name
        done = run([tool("systemd-analyze"), "security", "--offline=yes", str(path)])
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
        assert m, done.stdout + done.stderr
        assert float(m[1]) <= MAX_EXPOSURE, f"{path.name}: exposure {m[1]}"


def exec_starts(path: Path) -> list[list[str]]:
    text = path.read_text().replace("\\\n", " ")
    lines = re.findall(r"^ExecStart=(.+)$", text, re.M)
    return [shlex.split(re.sub(r"\$\{(\w+)\}", r"VALUE_OF_\1", line)) for line in lines]


def test_every_exchange_command_line_is_one_the_cli_accepts(loaded: list[Path]) -> None:
    checked = 0
    for path in loaded:
        for argv in exec_starts(path):
            if argv[0] != exchange_script():
                continue
            args = [a.replace("%i", "1").replace("%d", "/run/credentials") for a in argv[1:]]
            done = CliRunner().invoke(app, [*args, "--help"])
            assert done.exit_code == 0, f"{path.name}: {' '.join(args)}: {done.output}"
            checked += 1
    assert checked >= 5
    wrong = CliRunner().invoke(app, ["router", "--metrics-prot", "9101", "--help"])
    assert wrong.exit_code != 0  # what a drifted option would give


def test_every_process_writing_the_access_log_signs_its_chain_heads(loaded: list[Path]) -> None:
    """Once services.yaml registers identities, an unsigned chain verifies as forged."""
    writers = [p for p in loaded if p.suffix == ".service" and "kafka" not in p.name]
    writers = [p for p in writers if "audit-archiver" not in p.name]  # reads, never writes
    assert len(writers) == 5, [p.name for p in writers]
    for path in writers:
        text = path.read_text()
        m = re.search(r"^Environment=EXCHANGE_AUDIT_SERVICE=(\S+)$", text, re.M)
        assert m, f"{path.name} signs no audit chain heads (EXCHANGE_AUDIT_SERVICE)"
        assert re.fullmatch(r"gov-[a-z0-9%-]+", m[1]), m[1]
        assert "Environment=EXCHANGE_AUDIT_KEY_FILE=%d/audit-key" in text, path.name
        key = f"LoadCredential=audit-key:/etc/gov-exchange/credentials/{m[1]}.pem"
        assert key in text, path.name


def test_the_console_reads_its_keys_and_passwords_where_systemd_puts_them() -> None:
    text = (SYSTEMD / "gov-exchange-console.service").read_text()
    env = dict(re.findall(r"^Environment=(EXCHANGE_CONSOLE_\w+)=(.*)$", text, re.M))
    loads = dict(re.findall(r"^LoadCredential=([\w.-]+):(\S+)$", text, re.M))
    # a folder loaded as ID:DIR becomes %d/ID_<file>: the prefix is the ID and '_'
    assert env["EXCHANGE_CONSOLE_KEYS_DIR"] == env["EXCHANGE_CONSOLE_CREDENTIALS_DIR"] == "%d"
    assert env["EXCHANGE_CONSOLE_KEYS_PREFIX"] == "key_"
    assert loads["key"] == "/etc/gov-exchange/console/keys"
    assert env["EXCHANGE_CONSOLE_CREDENTIALS_PREFIX"] == "password_"
    assert loads["password"] == "/etc/gov-exchange/console/passwords"
    assert env["EXCHANGE_CONSOLE_ACCOUNTS"] == "%d/accounts.yaml"
    assert "accounts.yaml" in loads

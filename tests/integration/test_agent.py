"""``exchange agent``: a department's warm session answering its approve, reject and revoke.

The installed script runs as it would for a user: an agent of health in the
background, and the answer commands in new processes. A forwarded command is
recognised by its audit entry: it is written by the agent's audit chain (the
agent's process), not by a chain of the command's own.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import EXCHANGE, cli_env

from exchange.admin import users
from exchange.agent import client as agent_client
from exchange.audit.entry import Action, AuditEntry
from exchange.audit.log import entries_only, read_log
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department

pytestmark = [
    pytest.mark.integration,
    pytest.mark.embedded_only(
        "the agent runs the same Department session on either engine (the Kafka lane tests "
        "it with users and ACLs in test_signed_commands and test_broker_acls); its processes' "
        "SASL logins made this module take 160 s on Kafka, too long for every run"
    ),
]

BIRTH = "birth_medical_certificate"
FIELDS = ["mother_id_number"]


def _start_agent(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [EXCHANGE, "agent", "--as", "health"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=1):
            seen += proc.stderr.readline()
            if "listening at" in seen:
                return proc
    proc.kill()
    proc.wait()
    proc.stderr.close()
    raise AssertionError(f"the agent did not start: {seen}")


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()
    return code


@pytest.fixture
def env(tmp_path: Path, principals: users.Principals) -> dict[str, str]:
    """health's connection, in a private state directory (where the agent's socket goes)."""
    return cli_env(principals.of("health"), EXCHANGE_STATE_DIR=str(tmp_path / "state"))


@pytest.fixture
def agent(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = _start_agent(env)
    try:
        yield proc
    finally:
        _stop(proc)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXCHANGE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def _apply(principals: users.Principals) -> str:
    async with Department(principals.of("police"), "police") as police:
        return await police.apply(BIRTH, fields=FIELDS, purpose="新生儿户口登记 registration")


async def _entries(bus: Connection, action: Action, subject: str) -> list[AuditEntry]:
    found = []
    for _, e in entries_only(await read_log(bus)):
        if e.action == action and subject in (e.grant_id, e.application_id):
            found.append(e)
    return found


async def test_answers_go_through_the_agent(
    bus: Connection,
    loaded_catalog: Catalog,
    principals: users.Principals,
    env: dict[str, str],
    agent: subprocess.Popen[str],
) -> None:
    app_id = await _apply(principals)
    approved = run(env, "approve", app_id, "--as", "health", "--mask", "mother_id_number=keep:6:4")
    assert approved.returncode == 0, approved.stderr
    grant_id = approved.stdout.strip()
    assert grant_id.startswith("GR-")
    revoked = run(env, "revoke", grant_id, "--as", "health", "--reason", "办结 completed")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {grant_id}"

    (approval,) = await _entries(bus, Action.APPLICATION_APPROVED, app_id)
    (revocation,) = await _entries(bus, Action.GRANT_REVOKED, grant_id)
    # both by the agent's one chain: the commands' own processes wrote nothing
    assert approval.writer == revocation.writer
    assert f"-{agent.pid}" in approval.writer
    assert approval.details["masks"]
    assert "keep:6:4" in approval.details["masks"]


async def test_a_refusal_through_the_agent_names_its_reason(
    loaded_catalog: Catalog, env: dict[str, str], agent: subprocess.Popen[str]
) -> None:
    refused = run(env, "revoke", "GR-20260101-nosuch", "--as", "health", "--reason", "x")
    assert refused.returncode == 2
    assert "unknown grant 'GR-20260101-nosuch'" in refused.stderr
    assert agent.poll() is None  # the agent goes on serving


async def test_other_department_key_or_second_agent_are_not_its_business(
    bus: Connection,
    loaded_catalog: Catalog,
    principals: users.Principals,
    env: dict[str, str],
    agent: subprocess.Popen[str],
    tmp_path: Path,
) -> None:
    second = run(env, "agent", "--as", "health")
    assert second.returncode == 2
    assert "already listens" in second.stderr
    # a command naming a key the agent does not hold runs on its own (and fails on the key)
    other_key = tmp_path / "other.pem"
    mine = run(env, "revoke", "GR-x", "--as", "health", "--reason", "x", "--key", str(other_key))
    assert mine.returncode == 2
    assert "other.pem" in mine.stderr
    # police has no agent: its answers run in a session of their own, audited by it
    app_id = await _apply(principals)
    police_env = {**env, **principals.of("police").environment()}
    refused = run(police_env, "reject", app_id, "--as", "police", "--reason", "not mine")
    assert refused.returncode == 2
    (entry,) = [
        e for e in await _entries(bus, Action.COMMAND_REFUSED, app_id) if e.actor == "police"
    ]
    assert f"-{agent.pid}" not in entry.writer


async def test_the_socket_is_private_and_gone_after_stop(
    loaded_catalog: Catalog, env: dict[str, str]
) -> None:
    proc = _start_agent(env)
    path = agent_client.socket_path("health", Path(env["EXCHANGE_STATE_DIR"]))
    assert path.exists()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert _stop(proc) == 0
    assert not path.exists()
    # with no agent the command runs its own session, as before
    alone = run(env, "revoke", "GR-x", "--as", "health", "--reason", "x")
    assert alone.returncode == 2
    assert "unknown grant" in alone.stderr
    assert os.environ.get("EXCHANGE_NO_AGENT") is None

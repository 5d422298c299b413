"""The gateway's audit journal against a broker that stops answering, and a gateway killed.

An answer leaves once its audit entry is committed to the worker's local journal; the
journal ships it to ``gov.audit`` behind the answer. The test freezes the broker (SIGSTOP to
the embedded broker, or to every node of the Kafka cluster), asks a burst of lookups, which
are answered (their entries wait in the journals: counted), waits past the journal's window,
when the gateway must refuse (503, and ``/health`` says why), then SIGKILLs both workers and
their supervisor, lets the broker go on, and starts a new gateway on the same store: every
answered request's entry must reach the log, from the killed workers' journals. Duplicates
of entries shipped just before the freeze are allowed (the same seq and hash twice, which
``verify`` tells apart from an insertion); a missing one is not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest
from gateway_support import (
    basic,
    broker_pids,
    gateway_process,
    poll,
    worker_pids,
    write_passwords,
)
from routing_support import publish

from exchange.audit.journal import WINDOW_S, journals
from exchange.audit.log import entries_only, read_log
from exchange.audit.verify import verify
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.dev import sample
from exchange.gateway.service import journal_dir

pytestmark = pytest.mark.integration

POP = "population_basic"
ASKED = 300


def _journaled(folder: Path) -> int:
    """Records the journals in ``folder`` hold (a killed writer's WAL is read too).

    A journal a restarted gateway is making may not have its table yet: counted as empty
    (a clean-clone run once read one in that instant).
    """
    held = 0
    for path in journals(folder):
        with sqlite3.connect(path) as db:
            made = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'"
            ).fetchone()
            if made:
                held += db.execute("SELECT count(*) FROM records").fetchone()[0]
    return held


@pytest.mark.timeout(300)
async def test_answers_go_on_while_the_broker_is_frozen_and_a_killed_gateways_entries_arrive(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    rows = sample.generate(loaded_catalog.resources[POP].schema_, 1, seed=31)
    await publish(bus, loaded_catalog, POP, rows)
    key = str(rows[0]["id_number"])
    async with Department(bus, "police") as police, Department(bus, "hrss") as hrss:
        await police.approve(await hrss.apply(POP, fields=["name"], purpose="社保 benefits"))
    (tmp_path / "credentials").mkdir()
    credentials = write_passwords(tmp_path / "credentials")
    store, state = tmp_path / "gateway.sqlite", tmp_path / "state"
    prefix = f"while frozen {uuid.uuid4().hex}"
    frozen = broker_pids(bus)
    assert frozen, f"no process listens on {bus.bootstrap}"

    with gateway_process(bus, credentials, store, state, workers=2) as (url, proc):
        workers = worker_pids(proc.pid)
        async with httpx.AsyncClient(
            base_url=url, limits=httpx.Limits(max_connections=16)
        ) as client:

            async def one(purpose: str) -> httpx.Response:
                return await client.get(
                    f"/v1/resources/{POP}/records/{key}",
                    params={"purpose": purpose},
                    headers=basic("hrss"),
                )

            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            try:
                froze = time.monotonic()
                answers = await asyncio.gather(*(one(f"{prefix} {i}") for i in range(ASKED)))
                took = time.monotonic() - froze
                assert [r.status_code for r in answers] == [200] * ASKED
                assert took < WINDOW_S, f"the answers took {took:.1f} s"
                held = _journaled(journal_dir(store))
                print(
                    f"\nbroker frozen: {ASKED} answered in {took:.2f} s; the journals hold"
                    f" {held} entries"
                )
                assert held >= ASKED, "an answer left before its entry was in a journal"
                await asyncio.sleep(WINDOW_S + 0.5)  # past it in both workers
                refused = await one(f"{prefix} past the window")
                assert refused.status_code == 503, refused.text
                health = await client.get("/health")
                assert health.status_code == 503
                assert "has not acknowledged" in health.text, health.text
                print(f"past the {WINDOW_S:g} s window: 503, /health: {health.json()}")
            finally:
                for pid in workers:
                    os.kill(pid, signal.SIGKILL)
                os.kill(proc.pid, signal.SIGKILL)  # before it starts new workers
                for pid in frozen:
                    os.kill(pid, signal.SIGCONT)
        proc.wait(timeout=30)

    with gateway_process(bus, credentials, store, state, workers=2):
        started = time.monotonic()
        purposes: list[str] = []

        async def all_logged() -> bool:
            purposes[:] = [
                e.purpose
                for _, e in entries_only(await read_log(bus))
                if e.purpose is not None
                and e.purpose.startswith(f"{prefix} ")
                and not e.purpose.endswith("window")
            ]
            return len(set(purposes)) >= ASKED

        await poll(all_logged, within=30)
        print(
            f"all {ASKED} on the log {time.monotonic() - started:.2f} s after the restart"
            f" ({len(purposes) - ASKED} duplicates); the journals now hold"
            f" {_journaled(journal_dir(store))}"
        )
    assert sorted(set(purposes)) == sorted(f"{prefix} {i}" for i in range(ASKED))
    report = verify(await read_log(bus))
    assert not report.broken, report.problems

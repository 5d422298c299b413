"""``exchange gateway --workers 2``: two worker processes answer as one gateway.

Started as an operator starts it (a process of its own, on the module's real broker),
asked over TCP with a new connection per request, so the kernel spreads the requests
across both workers (``SO_REUSEPORT``); which worker answered is read from the audit
entry (each worker writes its own chain). hrss holds a data grant with a daily quota
of 6, market a data grant revoked during a test, civil_affairs a plain data grant.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import basic, gateway_process, poll, worker_pids, write_passwords
from routing_support import publish

from exchange.audit.entry import AuditEntry
from exchange.audit.journal import WINDOW_S
from exchange.audit.log import entries_only, read_log
from exchange.audit.verify import verify
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.dev import sample

pytestmark = pytest.mark.integration

POP = "population_basic"


@pytest.fixture(scope="module")
async def grants(bus: Connection, loaded_catalog: Catalog) -> dict[str, str]:
    async with (
        Department(bus, "police") as police,
        Department(bus, "hrss") as hrss,
        Department(bus, "market") as market,
        Department(bus, "civil_affairs") as civil,
    ):
        h = await hrss.apply(POP, fields=["name"], purpose="社保 benefits")
        m = await market.apply(POP, fields=["name"], purpose="法人核查 checks")
        c = await civil.apply(POP, fields=["name"], purpose="低保 allowance")
        return {
            "hrss": await police.approve(h, quota_per_day=6),
            "market": await police.approve(m),
            "civil_affairs": await police.approve(c),
        }


@pytest.fixture(scope="module")
async def key(bus: Connection, loaded_catalog: Catalog) -> str:
    rows = sample.generate(loaded_catalog.resources[POP].schema_, 1, seed=29)
    await publish(bus, loaded_catalog, POP, rows)
    return str(rows[0]["id_number"])


@pytest.fixture(scope="module")
def gateway(
    bus: Connection, grants: dict[str, str], key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any]]:
    credentials = write_passwords(tmp_path_factory.mktemp("credentials"))
    store = tmp_path_factory.mktemp("store") / "gateway.sqlite"
    with gateway_process(bus, credentials, store, tmp_path_factory.mktemp("state")) as served:
        yield served


async def ask(url: str, who: str, key: str, purpose: str, n: int) -> list[int]:
    """``n`` lookups by ``who``, each on a new connection (so both workers answer some)."""

    async def one() -> int:
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.get(
                f"/v1/resources/{POP}/records/{key}",
                params={"purpose": purpose},
                headers=basic(who),
            )
            return r.status_code

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def audited(bus: Connection, purpose_prefix: str, count: int) -> list[AuditEntry]:
    """The audit entries of the requests whose purpose starts with ``purpose_prefix``, once
    ``count`` of them are on the log (each worker ships its journal within the window)."""
    found: list[AuditEntry] = []

    async def logged() -> bool:
        found[:] = [
            e
            for _, e in entries_only(await read_log(bus))
            if e.purpose is not None and e.purpose.startswith(purpose_prefix)
        ]
        return len(found) >= count

    await poll(logged, within=WINDOW_S)
    return found


async def test_a_daily_quota_holds_across_both_workers_together(
    bus: Connection, gateway: tuple[str, Any], key: str
) -> None:
    url, _proc = gateway
    purpose = f"quota {uuid.uuid4().hex}"
    statuses = await ask(url, "hrss", key, purpose, 16)
    assert collections.Counter(statuses) == {200: 6, 429: 10}
    entries = await audited(bus, purpose, 16)
    assert len({e.writer for e in entries}) == 2  # both workers answered some
    assert collections.Counter(e.decision for e in entries) == {"answered": 6, "quota_exceeded": 10}


async def test_a_revocation_reaches_both_workers_within_a_second(
    bus: Connection, gateway: tuple[str, Any], key: str, grants: dict[str, str]
) -> None:
    url, _proc = gateway
    before = f"before revocation {uuid.uuid4().hex}"
    assert set(await ask(url, "market", key, before, 8)) == {200}
    async with Department(bus, "police") as police:
        await police.revoke(grants["market"], reason="合同到期 contract ended")
        revoked_at = time.monotonic()
    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - revoked_at)))
    after = f"after revocation {uuid.uuid4().hex}"
    assert set(await ask(url, "market", key, after, 16)) == {403}
    entries = await audited(bus, after, 16)
    assert len({e.writer for e in entries}) == 2
    assert all(e.decision == "denied" and "revoked" in (e.reason or "") for e in entries)


async def test_every_request_is_audited_once_and_counted_once_in_metrics(
    bus: Connection, gateway: tuple[str, Any], key: str
) -> None:
    url, _proc = gateway
    prefix = f"once {uuid.uuid4().hex}"
    purposes = [f"{prefix} {i}" for i in range(20)]
    statuses = await asyncio.gather(*(ask(url, "civil_affairs", key, p, 1) for p in purposes))
    assert [s for (s,) in statuses] == [200] * 20
    entries = await audited(bus, prefix, 20)
    assert sorted(e.purpose for e in entries) == sorted(purposes)  # each exactly once
    assert len({e.writer for e in entries}) == 2
    report = verify(await read_log(bus))
    assert not report.broken, report.problems
    assert sum(1 for w in report.writers if w.writer.startswith("gateway-")) >= 2
    async with httpx.AsyncClient() as client:  # whichever worker answers: both counted
        metrics = (await client.get(f"{url}/metrics")).text
    answered = _sample(metrics, "gov_exchange_gateway_requests_total", consumer="civil_affairs")
    assert answered == 20


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_the_store_gauges_are_one_figure_whichever_worker_is_asked(
    gateway: tuple[str, Any],
) -> None:
    url, _proc = gateway
    for _ in range(4):  # new connections: both workers answer some scrapes
        async with httpx.AsyncClient(base_url=url) as client:
            held = (await client.get("/health")).json()["records"]
        async with httpx.AsyncClient(base_url=url) as client:
            text = (await client.get("/metrics")).text
        gauges = dict(
            line.split()
            for line in text.splitlines()
            if line.startswith("gov_exchange_gateway_store_")
        )  # one series each, not one per worker (a pid label)
        assert set(gauges) == {
            "gov_exchange_gateway_store_records",
            "gov_exchange_gateway_store_applied",
        }
        assert float(gauges["gov_exchange_gateway_store_records"]) == held >= 1
        assert float(gauges["gov_exchange_gateway_store_applied"]) >= held


def test_a_killed_supervisors_metrics_folder_goes_at_the_next_start_and_sigterm_removes_it(
    bus: Connection, grants: dict[str, str], key: str, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"  # the gateways' temporary directory
    temp.mkdir()
    (tmp_path / "credentials").mkdir()
    credentials = write_passwords(tmp_path / "credentials")
    store = tmp_path / "gateway.sqlite"

    def folders() -> list[Path]:
        return sorted(temp.glob("gov-exchange-gateway-metrics-*"))

    with gateway_process(bus, credentials, store, tmp_path, env={"TMPDIR": str(temp)}) as (
        _url,
        proc,
    ):
        (killed,) = folders()
        workers = worker_pids(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # not its pipes: the workers hold them until they end
        deadline = time.monotonic() + 60  # its workers stop: their supervisor is gone
        while alive := [pid for pid in workers if _running(pid)]:
            assert time.monotonic() < deadline, f"workers {alive} outlived their supervisor"
            time.sleep(0.1)
    assert folders() == [killed]  # SIGKILL: nothing ran
    with gateway_process(bus, credentials, store, tmp_path, env={"TMPDIR": str(temp)}) as (
        url,
        proc,
    ):
        (mine,) = folders()
        assert mine != killed
        assert httpx.get(f"{url}/metrics").status_code == 200
        proc.terminate()
        proc.communicate(timeout=60)
    assert folders() == []


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (an exited one not yet reaped is a zombie: state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def test_a_worker_that_dies_is_replaced_and_the_gateway_keeps_answering(
    gateway: tuple[str, Any], key: str
) -> None:
    url, proc = gateway
    first = worker_pids(proc.pid)
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (len(now := worker_pids(proc.pid)) == 2 and first[0] not in now):
        assert time.monotonic() < deadline, "no worker replaced the dead one in 30 s"
        await asyncio.sleep(0.1)
    purpose = f"after a death {uuid.uuid4().hex}"
    assert set(await ask(url, "civil_affairs", key, purpose, 8)) == {200}
    (new,) = set(now) - set(first)

    async def answered_by_the_new_worker() -> bool:
        async with httpx.AsyncClient(base_url=url) as client:  # a new connection each time
            r = await client.get("/health")
            return r.status_code == 200 and r.json()["pid"] == new

    await poll(answered_by_the_new_worker, within=30)
    assert proc.poll() is None


def test_workers_dying_again_and_again_stop_the_gateway_with_its_reason(
    gateway: tuple[str, Any],
) -> None:
    """The module's last test: it stops the module's gateway."""
    _url, proc = gateway
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the gateway went on restarting workers"
        for pid in worker_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    _out, err = proc.communicate()
    assert proc.returncode == 2
    assert "workers died 5 times within 60 s: the gateway stops" in err.decode()

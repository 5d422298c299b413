"""Freshness against the update cycle (更新周期) through a running router, on the real broker.

birth certificates are declared real-time (at most 1 hour between publishes).
The router's freshness watch runs on a settable clock, so the test crosses the
cycle and back in seconds: stale one hour and a half after the last publish,
fresh again after a new publish; each change is one audit entry, and the
router's gauge holds the last publish time. ``exchange freshness`` measures the
same from the source topics, as of any moment (``--at``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from routing_support import RouterRun, list_topics, publish, running_router, wait_for
from typer.testing import CliRunner

from exchange.audit.entry import Action
from exchange.audit.log import entries_only, read_log
from exchange.bus.connection import Connection
from exchange.bus.last_publish import last_publish_times
from exchange.catalog.model import Catalog
from exchange.cli import app
from exchange.dev import sample

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


async def _publish_one(bus: Connection, catalog: Catalog, seed: int) -> None:
    record = sample.generate(catalog.resources[BMC].schema_, 1, seed=seed)[0]
    await publish(bus, catalog, BMC, [record])


def _freshness_cli(bus: Connection, *args: str) -> str:
    env = {**bus.environment(), "EXCHANGE_BOOTSTRAP_SERVERS": bus.bootstrap}

    def go() -> str:
        r = CliRunner().invoke(app, ["freshness", *args], env=env, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.stdout

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(go).result(timeout=60)


async def test_a_resource_turns_stale_after_its_cycle_and_fresh_when_published(
    router: RouterRun, bus: Connection, loaded_catalog: Catalog
) -> None:
    watch = router.router.freshness
    await _publish_one(bus, loaded_catalog, 1)
    await wait_for(lambda: BMC in watch.last, within=20, what="the publish seen by the router")
    first = watch.last[BMC]
    gauge = router.router.metrics.freshness.last_publish.labels(BMC)._value.get()
    assert gauge == pytest.approx(first.timestamp())
    assert [
        d for d in await watch.check(first + dt.timedelta(minutes=30)) if d.resource == BMC
    ] == []

    watch.clock = lambda: first + dt.timedelta(minutes=90)  # a settable clock: no sleep
    (stale,) = [d for d in await watch.check() if d.resource == BMC]
    assert stale.action is Action.RESOURCE_STALE
    assert stale.details["late_by_seconds"] == str(30 * 60)
    late = (first + dt.timedelta(minutes=90)).isoformat()
    shown = _freshness_cli(bus, "--as", "health", "--at", late)
    assert BMC in shown
    assert "30m 0s" in shown

    await _publish_one(bus, loaded_catalog, 2)
    await wait_for(lambda: watch.last[BMC] > first, within=20, what="the second publish")
    second = watch.last[BMC]
    watch.clock = lambda: second + dt.timedelta(minutes=10)
    (fresh,) = [d for d in await watch.check() if d.resource == BMC]
    assert fresh.action is Action.RESOURCE_FRESH
    assert "no stale resource of health" in _freshness_cli(bus, "--as", "health")
    # measuring reads only topics that exist: it creates none (a broker may auto-create)
    missing = "gov.src.health.no_such_resource"
    assert await last_publish_times(bus, [missing]) == {missing: None}
    assert missing not in await list_topics(bus)

    log = [e for _, e in entries_only(await read_log(bus)) if e.resource == BMC]
    changes = [e for e in log if e.action in (Action.RESOURCE_STALE, Action.RESOURCE_FRESH)]
    assert [e.action for e in changes] == [Action.RESOURCE_STALE, Action.RESOURCE_FRESH]
    assert changes[0].details["stale_since"] == changes[1].details["stale_since"]
    assert all(e.actor == "router" and e.provider == "health" for e in changes)

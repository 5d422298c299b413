"""Freshness against the declared update cycle (更新周期), with a settable clock."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from exchange.audit.entry import Action
from exchange.catalog import freshness
from exchange.catalog.model import Catalog, UpdateCycle
from exchange.metrics import FreshnessMetrics
from exchange.router.freshness import FreshnessWatch

BMC = "birth_medical_certificate"  # real-time, health
LICENCE = "business_licence"  # on change, market
MLA = "minimum_living_allowance"  # monthly, civil_affairs
T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


def test_each_cycle_allows_its_window_and_on_change_none(sample_catalog: Catalog) -> None:
    res = sample_catalog.resources
    assert freshness.allowed(res[BMC]) == dt.timedelta(hours=1)
    assert freshness.allowed(res[MLA]) == dt.timedelta(days=31)
    assert freshness.allowed(res[LICENCE]) is None
    assert set(freshness.ALLOWED) == set(UpdateCycle)


def test_survey_lists_resources_with_a_cycle_stale_after_it(sample_catalog: Catalog) -> None:
    last = {BMC: T0, MLA: T0}
    at = T0 + dt.timedelta(hours=2)
    found = {f.resource: f for f in freshness.survey(sample_catalog, last, at=at, since=T0)}
    assert LICENCE not in found  # on change: never stale
    assert found[BMC].stale
    assert found[BMC].late_by == dt.timedelta(hours=1)
    assert not found[MLA].stale
    assert found[MLA].late_by == dt.timedelta(0)
    only = freshness.survey(sample_catalog, last, at=at, since=T0, provider="health")
    assert {f.provider for f in only} == {"health"}


def test_a_resource_never_published_counts_from_when_it_was_first_watched(
    sample_catalog: Catalog,
) -> None:
    res = sample_catalog.resources[BMC]
    assert not freshness.of(res, None, at=T0 + dt.timedelta(minutes=59), since=T0).stale
    assert freshness.of(res, None, at=T0 + dt.timedelta(minutes=61), since=T0).stale


def _watch(catalog: Catalog, clock: list[dt.datetime]) -> tuple[FreshnessWatch, list[Any]]:
    state: Any = SimpleNamespace(snapshot=SimpleNamespace(catalog=catalog), bus=None)
    watch = FreshnessWatch(state, FreshnessMetrics(CollectorRegistry()), clock=lambda: clock[0])
    written: list[Any] = []

    async def write(drafts: list[Any]) -> None:
        written.extend(drafts)

    watch._write = write
    return watch, written


async def test_stale_and_recovered_are_audited_once_each(sample_catalog: Catalog) -> None:
    clock = [T0]
    watch, written = _watch(sample_catalog, clock)
    topic = f"gov.src.health.{BMC}"
    watch.published(topic, int(T0.timestamp() * 1000))
    assert await watch.check() == []
    gauge = watch.metrics.last_publish.labels(BMC)._value.get()
    assert gauge == T0.timestamp()

    clock[0] = T0 + dt.timedelta(minutes=90)  # the clock moves: no sleep of an hour
    (stale,) = [d for d in await watch.check() if d.resource == BMC]
    assert stale.action is Action.RESOURCE_STALE
    assert stale.provider == "health"
    assert stale.details["update_cycle"] == "real-time"
    assert stale.details["late_by_seconds"] == str(30 * 60)
    assert [d for d in await watch.check() if d.resource == BMC] == []  # once
    assert watch.metrics.stale.labels(BMC)._value.get() == 1

    republished = T0 + dt.timedelta(minutes=100)
    watch.published(topic, int(republished.timestamp() * 1000))
    clock[0] = T0 + dt.timedelta(minutes=101)
    (fresh,) = [d for d in await watch.check() if d.resource == BMC]
    assert fresh.action is Action.RESOURCE_FRESH
    assert fresh.details["stale_since"] == stale.details["stale_since"]
    assert "recovered_at" in fresh.details
    assert watch.metrics.stale.labels(BMC)._value.get() == 0
    assert [d.action for d in written if d.resource == BMC] == [
        Action.RESOURCE_STALE,
        Action.RESOURCE_FRESH,
    ]
    assert watch.metrics.cycle.labels(BMC)._value.get() == 3600


async def test_an_older_timestamp_does_not_move_the_last_publish_back(
    sample_catalog: Catalog,
) -> None:
    watch, _ = _watch(sample_catalog, [T0])
    topic = f"gov.src.health.{BMC}"
    watch.published(topic, int(T0.timestamp() * 1000))
    watch.published(topic, int((T0 - dt.timedelta(hours=5)).timestamp() * 1000))
    assert watch.last[BMC] == T0
    watch.published("gov.dlv.police.x", 1)  # not a source topic: ignored
    assert set(watch.last) == {BMC}

"""A recompile of some resources makes new delivery topics in the background.

Making a topic on a broker of thousands took half a second, and the routing loop used
to wait for it: every consumer's live records waited with it. The views that need a new
delivery topic are left out until it exists, then their resources are recompiled; a
full recompile and a new dead-letter topic still wait.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from exchange.bus.connection import Connection
from exchange.router import view_table
from exchange.router.view_table import ViewTable


def _table() -> ViewTable:
    """A table as a recompile leaves it: nothing stale (the state and metrics are not read
    by what is tested here)."""
    state: Any = None
    metrics: Any = None
    table = ViewTable(state, b"s" * 32, metrics, bus=Connection("127.0.0.1:9"), partitions=3)
    table._stale, table._stale_resources = False, set()
    return table


def _views() -> dict[str, list[Any]]:
    old = SimpleNamespace(consumer="police", topic="gov.dlv.police.bmc")
    new = SimpleNamespace(consumer="hrss", topic="gov.dlv.hrss.bmc")
    other = SimpleNamespace(consumer="police", topic="gov.dlv.police.licence")
    return {"bmc": [old, new], "licence": [other]}


def test_a_new_delivery_topic_is_made_in_the_background_and_its_view_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[set[str]] = []
    release = asyncio.Event()

    async def ensure_topics(bus: Connection, names: set[str], partitions: int | None) -> None:
        asked.append(set(names))
        await release.wait()

    monkeypatch.setattr(view_table.kafka, "ensure_topics", ensure_topics)

    async def run() -> None:
        table = _table()
        views = _views()
        assert table._hold_back({"bmc"}, views, {"gov.dlv.hrss.bmc"})
        # the view that needs the topic is left out; every other view is in force at once
        assert [v.consumer for v in views["bmc"]] == ["police"]
        assert len(views["licence"]) == 1
        await asyncio.sleep(0)
        assert asked == [{"gov.dlv.hrss.bmc"}]
        assert not table.stale  # nothing to recompile until the topic exists
        release.set()
        for _ in range(20):
            await asyncio.sleep(0)
        assert "gov.dlv.hrss.bmc" in table.known_topics
        assert table.stale  # its resource is recompiled: the view goes in force then
        assert table._stale_resources == {"bmc"}

    asyncio.run(run())


def test_a_full_recompile_or_a_new_dead_letter_topic_waits_for_its_topics() -> None:
    table = _table()
    views = _views()
    assert not table._hold_back(None, views, {"gov.dlv.hrss.bmc"})  # the first, a catalog
    assert not table._hold_back({"bmc"}, views, {"gov.dlv.hrss.bmc", "gov.dlq.bmc"})
    assert len(views["bmc"]) == 2  # nothing left out: the caller makes them and waits


def test_a_topic_the_broker_did_not_make_is_asked_for_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(bus: Connection, names: set[str], partitions: int | None) -> None:
        raise RuntimeError("the broker refused it")

    monkeypatch.setattr(view_table.kafka, "ensure_topics", refused)
    monkeypatch.setattr(view_table, "RETRY_TOPICS_S", 0.05)

    async def run() -> None:
        table = _table()
        assert table._hold_back({"bmc"}, _views(), {"gov.dlv.hrss.bmc"})
        for _ in range(20):
            await asyncio.sleep(0)
        assert not table.stale  # not at once: a refusing broker is asked once a second
        assert "gov.dlv.hrss.bmc" not in table.known_topics
        await asyncio.sleep(0.1)
        assert table.stale  # then its resource is recompiled, and the topic asked for again
        assert table._stale_resources == {"bmc"}

    asyncio.run(run())

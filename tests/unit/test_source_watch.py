"""The source watch asks for metadata when the catalog names a topic the consumer lacks,
backing off while it stays missing, and never when nothing is missing."""

from __future__ import annotations

import pytest

from exchange.router import source_watch
from exchange.router.source_watch import SourceWatch


class _Client:
    def __init__(self) -> None:
        self.asked = 0

    def force_metadata_update(self) -> None:
        self.asked += 1


class _Consumer:
    """What the watch uses of aiokafka's consumer: the topics subscribed by pattern."""

    def __init__(self) -> None:
        self.topics: set[str] = set()
        self._client = _Client()

    def subscription(self) -> set[str]:
        return set(self.topics)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(source_watch.time, "monotonic", lambda: now[0])
    return now


def test_asks_at_once_then_backs_off_until_the_topic_is_there(clock: list[float]) -> None:
    consumer = _Consumer()
    consumer.topics = {"gov.src.police.a"}
    watch = SourceWatch(consumer)
    watch.catalog(frozenset({"gov.src.police.a", "gov.src.health.b"}))
    assert watch.missing == {"gov.src.health.b"}
    watch.poll()
    assert consumer._client.asked == 1
    watch.poll()  # not yet time to look again
    assert consumer._client.asked == 1
    clock[0] += source_watch.FIRST_WAIT_S
    watch.poll()
    assert consumer._client.asked == 2
    clock[0] += source_watch.FIRST_WAIT_S  # the wait doubled: still too early
    watch.poll()
    assert consumer._client.asked == 2
    clock[0] += source_watch.FIRST_WAIT_S
    watch.poll()
    assert consumer._client.asked == 3
    consumer.topics.add("gov.src.health.b")
    clock[0] += 3600
    watch.poll()
    watch.poll()
    assert consumer._client.asked == 3  # nothing missing: no more asks
    assert not watch.missing


def test_the_wait_is_bounded_and_resets_with_a_new_catalog(clock: list[float]) -> None:
    consumer = _Consumer()
    watch = SourceWatch(consumer)
    watch.catalog(frozenset({"gov.src.health.b"}))
    for _ in range(20):
        watch.poll()
        clock[0] += source_watch.LONGEST_WAIT_S
    assert consumer._client.asked == 20  # at most LONGEST_WAIT_S apart, never given up
    watch.catalog(frozenset({"gov.src.health.b", "gov.src.health.c"}))
    watch.poll()
    assert consumer._client.asked == 21  # a changed catalog: asked at once
    watch.catalog(frozenset({"gov.src.health.b", "gov.src.health.c"}))
    watch.poll()
    assert consumer._client.asked == 21  # the same catalog again changes nothing


def test_nothing_missing_asks_nothing(clock: list[float]) -> None:
    consumer = _Consumer()
    consumer.topics = {"gov.src.police.a"}
    watch = SourceWatch(consumer)
    watch.catalog(frozenset({"gov.src.police.a"}))
    watch.poll()
    assert consumer._client.asked == 0

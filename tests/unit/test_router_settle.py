"""Settling: a commit refused because the group rebalanced is reported, not fatal.

The embedded broker never expires a member, so this path cannot be reached
through it; a stand-in consumer refuses the commit the way aiokafka does.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from exchange.router.loop import Router, _Routed


class RebalancedConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)
        raise CommitFailedError("the group has already rebalanced")

    def highwater(self, tp: Any) -> int | None:
        return None


async def test_a_refused_commit_is_counted_and_routing_goes_on() -> None:
    r = Router("127.0.0.1:9", master_secret=b"x" * 32)
    consumer = RebalancedConsumer()
    r._consumer = consumer
    tp = TopicPartition("gov.src.health.birth_medical_certificate", 0)
    r._unsettled.append(_Routed([], [], [tp], {tp: 10}, 10, None, None))
    r._unsettled.append(_Routed([], [], [tp], {tp: 25}, 15, None, None))
    await r._settle_loop()  # no exception: the records are routed again after the rebalance
    assert consumer.commits == [{tp: 25}]  # one commit for the round, the later offset
    assert r.metrics.uncommitted_batches._value.get() == 2
    assert r.routed == 0  # 'routed' counts committed records only
    assert not r._unsettled

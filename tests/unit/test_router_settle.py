"""Settling: a commit refused because the group rebalanced is reported, not fatal.

The embedded broker never expires a member, so this path cannot be reached
through it; a stand-in consumer refuses the commit the way aiokafka does.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from exchange.metrics import RouterMetrics
from exchange.router.settle import Settler


class RebalancedConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)
        raise CommitFailedError("the group has already rebalanced")

    def highwater(self, tp: Any) -> int | None:
        return None


async def test_a_refused_commit_is_counted_and_routing_goes_on() -> None:
    settler = Settler(RouterMetrics())
    consumer = RebalancedConsumer()
    settler.consumer = consumer
    tp = TopicPartition("gov.src.health.birth_medical_certificate", 0)
    settler.add([], [tp], {tp: 10}, 10, None)
    settler.add([], [tp], {tp: 25}, 15, None)
    await settler.settle()  # no exception: the records are routed again after the rebalance
    assert consumer.commits == [{tp: 25}]  # one commit for the round, the later offset
    assert settler.metrics.uncommitted_batches._value.get() == 2
    assert settler.routed == 0  # 'routed' counts committed records only
    assert settler.waiting == 0

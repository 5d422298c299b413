"""Settling: a commit refused because the group rebalanced is reported, not fatal.

The embedded broker never expires a member, so this path cannot be reached
through it; a stand-in consumer refuses the commit the way aiokafka does.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from exchange.metrics import RouterMetrics
from exchange.router.settle import Settler


class RebalancedConsumer:
    """A consumer whose group rebalanced: ``assigned`` is what it holds now."""

    def __init__(self, assigned: set[Any], *, refuse: bool = False) -> None:
        self.commits: list[dict[Any, int]] = []
        self.assigned = assigned
        self.refuse = refuse  # the coordinator refuses the commit (rebalanced meanwhile)

    def assignment(self) -> set[Any]:
        return self.assigned

    async def commit(self, offsets: dict[Any, int]) -> None:
        if not offsets.keys() <= self.assigned:
            raise IllegalStateError("Partition is not assigned")  # what aiokafka does
        self.commits.append(offsets)
        if self.refuse:
            raise CommitFailedError("the group has already rebalanced")

    def highwater(self, tp: Any) -> int | None:
        return None


async def test_a_refused_commit_is_counted_and_routing_goes_on() -> None:
    settler = Settler(RouterMetrics())
    tp = TopicPartition("gov.src.health.birth_medical_certificate", 0)
    consumer = RebalancedConsumer({tp}, refuse=True)
    settler.consumer = consumer
    settler.add([], [tp], {tp: 10}, 10, None)
    settler.add([], [tp], {tp: 25}, 15, None)
    await settler.settle()  # no exception: the records are routed again after the rebalance
    assert consumer.commits == [{tp: 25}]  # one commit for the round, the later offset
    assert settler.metrics.uncommitted_batches._value.get() == 2
    assert settler.routed == 0  # 'routed' counts committed records only
    assert settler.waiting == 0


async def test_offsets_of_a_partition_taken_by_a_rebalance_are_left_to_its_new_owner() -> None:
    settler = Settler(RouterMetrics())
    kept = TopicPartition("gov.src.health.birth_medical_certificate", 0)
    taken = TopicPartition("gov.src.health.birth_medical_certificate", 1)
    consumer = RebalancedConsumer(assigned={kept})  # partition 1 went to another router
    settler.consumer = consumer
    settler.add([], [kept, taken], {kept: 10, taken: 7}, 17, None)
    await settler.settle()  # no IllegalStateError: the router goes on
    assert consumer.commits == [{kept: 10}]

    consumer.assigned = set()  # and when none of the round's partitions is left
    settler.add([], [kept], {kept: 12}, 2, None)
    await settler.settle()
    assert consumer.commits == [{kept: 10}]
    assert settler.metrics.uncommitted_batches._value.get() == 1

"""Delivery entries of one settling round are merged per consumer, view and partition."""

from __future__ import annotations

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.router.settle import merge_deliveries


def delivered(consumer: str, partition: int, offsets: str, n: int, filtered: int = 0) -> Draft:
    return Draft(
        Action.RECORDS_DELIVERED,
        actor="router",
        decision=Decision.DELIVERED,
        resource="birth_medical_certificate",
        consumer=consumer,
        details=detail_map(
            record_count=n,
            filtered_count=filtered,
            partition=partition,
            offsets=offsets,
            delivery_topic=f"gov.dlv.{consumer}.birth_medical_certificate",
        ),
    )


def test_counts_are_summed_and_offset_ranges_joined_per_partition() -> None:
    dead = Draft(Action.RECORD_DEAD_LETTERED, actor="router", decision=Decision.DEAD_LETTERED)
    drafts = [
        delivered("police", 0, "0-9", 10),
        delivered("hrss", 0, "0-9", 8, 2),
        dead,
        delivered("police", 0, "10-14", 5),
        delivered("police", 1, "0-3", 4),
        delivered("hrss", 0, "10-14", 5),
    ]
    out = merge_deliveries(drafts)
    assert [(d.action, d.consumer, d.details.get("partition")) for d in out] == [
        (Action.RECORDS_DELIVERED, "police", "0"),
        (Action.RECORDS_DELIVERED, "hrss", "0"),
        (Action.RECORD_DEAD_LETTERED, None, None),
        (Action.RECORDS_DELIVERED, "police", "1"),
    ]
    police0, hrss0 = out[0].details, out[1].details
    assert (police0["record_count"], police0["filtered_count"], police0["offsets"]) == (
        "15",
        "0",
        "0-14",
    )
    assert (hrss0["record_count"], hrss0["filtered_count"], hrss0["offsets"]) == ("13", "2", "0-14")
    assert out[3].details["offsets"] == "0-3"


def test_a_different_view_is_not_merged() -> None:
    a = delivered("police", 0, "0-9", 10)
    b = delivered("police", 0, "10-19", 10)
    b = Draft(**{**b.__dict__, "grant_id": "GRANT-2"})  # the grant changed between batches
    assert len(merge_deliveries([a, b])) == 2

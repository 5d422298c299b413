"""The partitioner that remembers a few keys chooses exactly as Kafka's default does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from exchange.bus.kafka import FewKeysPartitioner


def test_it_chooses_the_default_partition_for_every_key_and_partition_count() -> None:
    few, default = FewKeysPartitioner(size=8), DefaultPartitioner()
    keys = [f"gateway-host-{i}-a1b2c3".encode() for i in range(40)] + [b"", b"\xff" * 40]
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for _ in range(2):  # the second time from what it remembers (or forgot: size 8)
            for key in keys:
                assert few(key, partitions, partitions) == default(key, partitions, partitions)
    assert len(few._known) <= 8  # bounded


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    few = FewKeysPartitioner()
    assert {few(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert few(None, [0, 1, 2], []) in {0, 1, 2}

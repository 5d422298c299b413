"""The bus's partitioner gives every key the partition any Kafka client gives it."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from exchange.bus.partitioner import murmur2, partition_of

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed, as Java prints them)
JAVA = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), JAVA.items())
def test_the_java_clients_values(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed & 0xFFFFFFFF


def test_the_same_hash_as_aiokafka_for_every_length() -> None:
    rng = random.Random(7)
    for length in [*range(0, 70), 1023, 1024, 1025, 4099]:
        for _ in range(20):
            key = rng.randbytes(length)
            assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF, length


def test_the_same_partition_as_the_default_partitioner() -> None:
    rng = random.Random(11)
    for partitions in (1, 3, 7, 12):
        every = list(range(partitions))
        for _ in range(300):
            key = "91330106" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPQRTUWXY", k=10))
            raw = key.encode()
            assert partition_of(raw, partitions) == DefaultPartitioner()(raw, every, every)

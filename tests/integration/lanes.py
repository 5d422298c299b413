"""The two lanes of the integration suite: the embedded broker and an Apache Kafka cluster.

See ``conftest.py`` for what each lane is; this module has what fixtures of
both the conftest and single test modules use.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

from aiokafka.admin import AIOKafkaAdminClient

from exchange.bus.connection import Connection
from exchange.dev import engines
from exchange.dev.broker import EmbeddedBroker
from exchange.dev.kafka import KafkaCluster
from exchange.settings import Settings

KAFKA_NODES = 3


async def _empty(admin: Connection) -> None:
    """Delete every topic and consumer group a previous module left on the cluster."""
    client = AIOKafkaAdminClient(**admin.client_options())
    await client.start()
    try:
        names = [t for t in await client.list_topics() if not t.startswith("__")]
        if names:
            await client.delete_topics(names)
        groups = [g[0] for g in await client.list_consumer_groups()]
        if groups:  # left over by the previous module (empty: its consumers are gone)
            from kafka.admin import KafkaAdminClient

            sync = KafkaAdminClient(**admin.sync_client_options())
            try:
                await asyncio.to_thread(sync.delete_groups, groups)
            finally:
                sync.close()
        for _ in range(100):  # deleted topics leave the metadata shortly after
            if not [t for t in await client.list_topics() if t in names]:
                return
            await asyncio.sleep(0.1)
    finally:
        await client.close()


def fresh_bus(kafka_lane: KafkaCluster | None) -> Iterator[Connection]:
    """An empty bus: the Kafka lane's cluster emptied, else a new embedded broker (or the
    given ``EXCHANGE_BOOTSTRAP_SERVERS``)."""
    if kafka_lane is not None:
        admin = engines.super_user(kafka_lane)
        asyncio.run(_empty(admin))
        yield admin
        return
    given = os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS")
    if given:
        yield Settings().connection(given)
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.connection
    finally:
        broker.stop()

"""Topics configured for what they hold, on a real 1-node Apache Kafka (SCRAM admin).

The topics are created by :func:`exchange.bus.kafka.create_missing_topics` and checked
by :func:`exchange.bus.topic_config.check_topics` with an admin client built from the
cluster's admin credentials. Run with -s to see the figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from exchange.bus import kafka, topic_config, topics
from exchange.bus.topic_config import TopicPolicy, TopicsUnsafe
from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.dev import engines
from exchange.dev.kafka import KafkaCluster
from exchange.errors import BrokerUnavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.kafka_only(
        "starts Apache Kafka clusters of its own: run once, in the Apache Kafka lane (the "
        "shorter one since lane 1 took 1,540 s and lane 2 1,138 s, 3 December)"
    ),
]

WEEK_MS = "604800000"


@pytest.fixture(scope="module")
def cluster(kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    started = KafkaCluster(tmp_path_factory.mktemp("kafka-topics"), 1)
    try:
        yield started.start()
    finally:
        started.stop()


@pytest.fixture
async def admin(cluster: KafkaCluster) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**cluster.client_options())
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, Any]:
    """The topic's settings, once the broker knows the topic (shortly after the controller)."""
    for _ in range(50):
        [answer] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = answer.to_object()["resources"]
        if resource["error_code"] == 0:
            return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        await asyncio.sleep(0.2)
    raise AssertionError(f"{topic}: {resource['error_message']}")


async def test_control_topics_are_created_kept_forever_or_compacted(
    admin: AIOKafkaAdminClient,
) -> None:
    made = await kafka.create_missing_topics(
        admin, topics.CONTROL_TOPICS, TopicPolicy(), partitions=kafka.CONTROL_PARTITIONS
    )
    assert sorted(made) == sorted(topics.CONTROL_TOPICS)
    seen = {t: await _configs(admin, t) for t in topics.CONTROL_TOPICS}
    for topic in (topics.CATALOG, topics.GRANTS, topics.AUDIT):
        assert seen[topic]["cleanup.policy"] == "delete"
        assert (seen[topic]["retention.ms"], seen[topic]["retention.bytes"]) == ("-1", "-1")
    for topic in (topics.SCHEMAS, topics.BOOK):
        assert seen[topic]["cleanup.policy"] == "compact"
    assert await topic_config.check_topics(admin) == []
    for topic, c in seen.items():
        print(
            f"{topic}: cleanup.policy={c['cleanup.policy']} retention.ms={c['retention.ms']} "
            f"retention.bytes={c['retention.bytes']} min.insync.replicas={c['min.insync.replicas']}"
        )


async def test_data_topics_get_their_family_retention(admin: AIOKafkaAdminClient) -> None:
    source, dlq = topics.source("tax", "filings"), topics.dead_letter("filings")
    await kafka.create_missing_topics(admin, [source, dlq], TopicPolicy(), partitions=None)
    assert (await _configs(admin, source))["retention.ms"] == str(7 * topic_config.DAY_MS)
    assert (await _configs(admin, dlq))["retention.ms"] == str(30 * topic_config.DAY_MS)


async def test_a_control_topic_kept_a_week_is_refused(
    cluster: KafkaCluster, admin: AIOKafkaAdminClient
) -> None:
    await kafka.create_missing_topics(admin, topics.CONTROL_TOPICS, TopicPolicy(), partitions=1)
    resource = ConfigResource(ConfigResourceType.TOPIC, topics.GRANTS, {"retention.ms": WEEK_MS})
    await admin.alter_configs([resource])  # what an operator's slip, or a stock default, does
    try:
        for _ in range(50):  # the broker applies the controller's change shortly after
            found = await topic_config.check_topics(admin)
            if found:
                break
            await asyncio.sleep(0.2)
        [problem] = found
        assert (problem.topic, problem.setting, problem.found) == (
            topics.GRANTS,
            "retention.ms",
            WEEK_MS,
        )
        with pytest.raises(TopicsUnsafe) as refused:
            await topic_config.require_safe_topics(cluster.client_options())
        message = str(refused.value)
        assert "refusing to start" in message
        assert f"topic gov.ctl.grants: retention.ms is {WEEK_MS}, must be -1 (forever)" in message
        assert "--entity-name gov.ctl.grants --add-config retention.ms=-1" in message
        print(f"\n{message}")
    finally:
        restored = ConfigResource(ConfigResourceType.TOPIC, topics.GRANTS, {"retention.ms": "-1"})
        await admin.alter_configs([restored])
    for _ in range(50):
        if not (found := await topic_config.check_topics(admin)):
            break
        await asyncio.sleep(0.2)
    assert found == []


async def test_a_topic_on_broker_defaults_is_refused(admin: AIOKafkaAdminClient) -> None:
    """A stock broker's 7-day default, reported by real Kafka for a topic made without one."""
    from aiokafka.admin import NewTopic

    await admin.create_topics([NewTopic("gov.test.defaults", 1, 1)])
    for _ in range(50):  # the broker learns of a new topic shortly after the controller
        found = await topic_config.check_topics(admin, ["gov.test.defaults"])
        if found:
            break
        await asyncio.sleep(0.2)
    assert [(p.setting, p.found) for p in found] == [("retention.ms", WEEK_MS)]


async def test_fewer_replicas_than_configured_are_refused(admin: AIOKafkaAdminClient) -> None:
    await kafka.create_missing_topics(admin, topics.CONTROL_TOPICS, TopicPolicy(), partitions=1)
    found = await topic_config.check_topics(
        admin, [topics.CATALOG], TopicPolicy(replication_factor=3)
    )
    assert [(p.setting, p.found) for p in found] == [("replication factor", "1")]
    print(f"\n{found[0]}")


async def test_source_topics_keep_what_the_catalog_says(
    cluster: KafkaCluster, admin: AIOKafkaAdminClient, sample_catalog: Catalog
) -> None:
    """A resource's ``source_retention_days`` is its source topic's retention, changed with it."""
    bus = engines.super_user(cluster)
    birth = sample_catalog.resource("birth_medical_certificate")
    topic = topics.source(birth.provider, birth.id)

    def with_days(days: int | None) -> Catalog:
        changed = birth.model_copy(update={"source_retention_days": days})
        return sample_catalog.model_copy(
            update={"resources": {**sample_catalog.resources, birth.id: changed}}
        )

    await catalog_store.load(bus, with_days(30), actor="tests", unsigned_override="test suite")
    assert (await _configs(admin, topic))["retention.ms"] == str(30 * topic_config.DAY_MS)
    other = topics.source("police", "population_basic")
    assert (await _configs(admin, other))["retention.ms"] == str(7 * topic_config.DAY_MS)
    await catalog_store.load(bus, with_days(-1), actor="tests", unsigned_override="test suite")
    for _ in range(50):  # the new value reaches every broker shortly after the controller
        seen = await _configs(admin, topic)
        if seen["retention.ms"] == "-1":
            break
        await asyncio.sleep(0.2)
    assert (seen["retention.ms"], seen["retention.bytes"]) == ("-1", "-1")
    print(f"\n{topic}: 30 days from the catalog, then for ever after a catalog change")


async def test_thousands_of_topics_at_once_are_all_made_and_shown(
    admin: AIOKafkaAdminClient,
) -> None:
    # Kafka refuses one request this large whole (POLICY_VIOLATION for every topic: too
    # many metadata records in one operation), and its brokers show new topics a while
    # after the controller took them: the function asks in batches and waits for both
    names = [topics.delivery(f"many{i // 60:02d}", f"res{i % 60:03d}") for i in range(3600)]
    made = await kafka.create_missing_topics(admin, names, TopicPolicy(), partitions=1)
    assert sorted(made) == sorted(names)
    assert await kafka.create_missing_topics(admin, names, TopicPolicy(), partitions=1) == []
    assert (await _configs(admin, names[-1]))["retention.ms"] == str(7 * topic_config.DAY_MS)


async def test_a_topic_the_cluster_cannot_make_is_named_at_once(
    admin: AIOKafkaAdminClient,
) -> None:
    three = TopicPolicy(replication_factor=3)  # a 1-node cluster has one replica to give
    with pytest.raises(BrokerUnavailable, match=r"gov\.dlv\.lonely\.res.*InvalidReplication"):
        await kafka.create_missing_topics(admin, [topics.delivery("lonely", "res")], three)

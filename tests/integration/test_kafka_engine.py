"""Apache Kafka as an engine: real KRaft clusters started by ``exchange/dev/kafka.py``.

No mocks: each cluster is JVMs from Maven Central's jars (the ``kafka_jars``
fixture fetches them once). Every test prints what it measured; run with -s
to see the figures.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.errors import (
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from cli_support import Cli, alive

from exchange.dev.kafka import KafkaCluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.kafka_only(
        "starts Apache Kafka clusters of its own: run once, in the Apache Kafka lane (the "
        "shorter one since lane 1 took 1,540 s and lane 2 1,138 s, 3 December)"
    ),
]

TOPIC = "gov.test.durable"
GROUP = "gov-test-reader"
RECORDS = 100
COMMITTED = 60


def _started(what: str, cluster: KafkaCluster) -> KafkaCluster:
    began = time.monotonic()
    cluster.start()
    print(f"\n{what}: serving after {time.monotonic() - began:.1f} s on {cluster.bootstrap}")
    return cluster


@pytest.fixture(scope="module")
def one_node(kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-1"), 1)
    try:
        yield _started("1-node cluster, formatted and started", cluster)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def three_nodes(
    kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-3"), 3)
    try:
        yield _started("3-node cluster, formatted and started", cluster)
    finally:
        cluster.stop()


async def _create(cluster: KafkaCluster, topic: str) -> None:
    """One partition, replicated on every node (min.insync.replicas is the broker's: 2 of 3)."""
    admin = AIOKafkaAdminClient(**cluster.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, replication_factor=cluster.nodes)])
    finally:
        await admin.close()


async def _replication(cluster: KafkaCluster, topic: str) -> tuple[int, str]:
    """(replicas of partition 0, the topic's effective min.insync.replicas)."""
    admin = AIOKafkaAdminClient(**cluster.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})
        [answer] = await admin.describe_configs([resource])
    finally:
        await admin.close()
    [config] = answer.to_object()["resources"][0]["config_entries"]
    return len(described["partitions"][0]["replicas"]), config["config_value"]


async def _produce(options: dict[str, Any], topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value)
        await producer.flush()
    finally:
        await producer.stop()


async def _read_all(options: dict[str, Any], topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(**options, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        got: list[bytes] = []
        while len(got) < count:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(got)} of {count} records came back"
            got += [r.value for records in batch.values() for r in records]
        return got
    finally:
        await consumer.stop()


async def test_produce_and_consume_with_scram(one_node: KafkaCluster) -> None:
    options = one_node.client_options()
    await _create(one_node, TOPIC)
    values = [f"record-{i}".encode() for i in range(RECORDS)]
    began = time.monotonic()
    await _produce(options, TOPIC, values)
    produced = time.monotonic() - began

    consumer = AIOKafkaConsumer(
        TOPIC, **options, group_id=GROUP, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < RECORDS:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(got)} of {RECORDS} records came back"
            got += [r.value for records in batch.values() for r in records]
        await consumer.commit({TopicPartition(TOPIC, 0): COMMITTED})
    finally:
        await consumer.stop()
    assert got == values
    print(f"{RECORDS} records produced (acks=all, idempotent) in {produced:.2f} s and read back")


@pytest.mark.parametrize(
    ("user", "password"),
    [("admin", "not-the-password"), ("nobody", "whatever")],
    ids=["wrong-password", "unknown-user"],
)
async def test_wrong_credentials_are_refused(
    one_node: KafkaCluster, user: str, password: str
) -> None:
    options = one_node.client_options(user, password)
    del options["bootstrap_servers"]
    with pytest.raises(SaslAuthenticationFailed) as refused:
        await create_conn("127.0.0.1", one_node.client_port(1), **options)
    print(f"{user}: refused by the broker: {refused.value}")


async def test_a_new_user_authenticates_but_no_acl_means_no_access(one_node: KafkaCluster) -> None:
    one_node.add_user("police", "police-password-for-the-test")
    assert "police" in one_node.users()
    options = one_node.client_options("police", "police-password-for-the-test")
    producer = AIOKafkaProducer(**options, request_timeout_ms=5000)
    await producer.start()  # authenticated
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(TOPIC, b"forged")
    finally:
        await producer.stop()
    print(f"users {one_node.users()}; police authenticates, writing {TOPIC} is refused (no ACL)")


async def test_stop_and_start_keep_records_and_committed_offsets(one_node: KafkaCluster) -> None:
    password = one_node.password_file.read_text()
    began = time.monotonic()
    one_node.stop()
    stopped = time.monotonic() - began
    assert one_node.running() == []
    began = time.monotonic()
    one_node.start()
    restarted = time.monotonic() - began
    assert one_node.password_file.read_text() == password

    options = one_node.client_options()
    assert len(await _read_all(options, TOPIC, RECORDS)) == RECORDS
    consumer = AIOKafkaConsumer(**options, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(TOPIC, 0)) == COMMITTED
    finally:
        await consumer.stop()
    assert "police" in one_node.users()
    print(
        f"stopped in {stopped:.1f} s, serving again after {restarted:.1f} s: "
        f"{RECORDS} records, committed offset {COMMITTED} and user police all there"
    )


async def _acked_within(options: dict[str, Any], topic: str, value: bytes, limit: float) -> float:
    """Seconds until one acks=all record is acknowledged."""
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        began = time.monotonic()
        await asyncio.wait_for(producer.send_and_wait(topic, value), limit)
        return time.monotonic() - began
    finally:
        await producer.stop()


async def _leader(options: dict[str, Any], topic: str) -> int:
    consumer = AIOKafkaConsumer(**options)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        leader = consumer._client.cluster.leader_for_partition(TopicPartition(topic, 0))
        return int(leader)
    finally:
        await consumer.stop()


async def test_three_nodes_survive_losing_one(three_nodes: KafkaCluster) -> None:
    options = three_nodes.client_options()
    topic = "gov.test.replicated"
    await _create(three_nodes, topic)
    assert await _replication(three_nodes, topic) == (3, "2")
    before = [f"before-{i}".encode() for i in range(50)]
    after = [f"after-{i}".encode() for i in range(49)]
    await _produce(options, topic, before)
    leader = await _leader(options, topic)

    three_nodes.kill_node(leader)  # SIGKILL the partition's leader
    failover = await _acked_within(options, topic, b"after-kill", 30)
    await _produce(options, topic, after)
    survivors = [n for n in three_nodes.node_ids if n != leader]
    assert three_nodes.running() == survivors
    assert await _read_all(options, topic, 100) == [*before, b"after-kill", *after]

    began = time.monotonic()
    three_nodes.start()  # starts the node that does not run
    rejoined = time.monotonic() - began
    print(
        f"leader node {leader} SIGKILLed: the next acks=all record acknowledged after "
        f"{failover:.1f} s, 0 of 100 records lost; node {leader} back after {rejoined:.1f} s"
    )


async def test_two_nodes_down_hold_acks_all_until_they_return(three_nodes: KafkaCluster) -> None:
    """With 2 of 3 combined nodes down the metadata quorum is gone too, so the survivor
    cannot shrink the ISR: an acks=all record is not acknowledged (rather than refused
    with NOT_ENOUGH_REPLICAS, which needs a controller to shrink the ISR first) until
    the nodes return."""
    options = three_nodes.client_options()
    topic = "gov.test.quorum"
    await _create(three_nodes, topic)
    survivor = await _leader(options, topic)
    killed = [n for n in three_nodes.node_ids if n != survivor]
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for node in killed:
            three_nodes.kill_node(node)
        sent = await producer.send(topic, b"while-two-are-down")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(sent), 8)
        began = time.monotonic()
        three_nodes.start()  # starts the nodes that do not run
        await asyncio.wait_for(sent, 60)
        acked = time.monotonic() - began
    finally:
        await producer.stop()
    assert len(await _read_all(options, topic, 1)) == 1
    print(
        f"nodes {killed} SIGKILLed: an acks=all record unacknowledged for 8 s; "
        f"acknowledged {acked:.1f} s after restarting them"
    )


def test_cli_starts_stops_and_resumes_a_kafka_cluster(kafka_jars: Path, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "state")
    data = tmp_path / "kafka-data"
    try:
        first = cli("broker", "start", "--engine", "kafka", "--data-dir", str(data), timeout=150)
        assert first.returncode == 0, first.stderr
        assert f"formatted in {data}" in first.stdout
        bootstrap = re.search(r"bootstrap servers: (\S+)", first.stdout)
        assert bootstrap, first.stdout

        status = cli("broker", "status")
        assert status.returncode == 0, status.stderr
        assert "engine: Apache Kafka" in status.stdout
        assert "running" in status.stdout
        assert f"data directory: {data} (survives a restart: yes)" in status.stdout
        assert f"password in {data / 'admin.password'}" in status.stdout
        assert (data / "admin.password").stat().st_mode & 0o777 == 0o600
        pids = [int(p) for p in re.findall(r"pid (\d+)", status.stdout)]
        assert pids
        assert all(alive(pid) for pid in pids)

        stopped = cli("broker", "stop", timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert f"data is kept in {data}" in stopped.stdout
        assert not any(alive(pid) for pid in pids)
        after = cli("broker", "status")
        assert after.returncode == 1
        assert "stopped" in after.stdout

        again = cli("broker", "start", "--engine", "kafka", timeout=150)  # the remembered dir
        assert again.returncode == 0, again.stderr
        assert f"resumed from {data}" in again.stdout
        assert f"bootstrap servers: {bootstrap[1]}" in again.stdout
        print(f"\n{first.stdout.splitlines()[0]}\n{again.stdout.splitlines()[0]}")
    finally:
        cli("broker", "stop", timeout=60)
        if (data / "cluster.json").exists():
            KafkaCluster(data).stop()  # whatever the CLI left running


@pytest.mark.timeout(600)
def test_the_readmes_production_path(kafka_jars: Path, tmp_path: Path) -> None:
    """The README's production section, command by command, on a 3-node cluster."""
    cli = Cli(tmp_path / "state")
    data = tmp_path / "bus-data"
    try:
        began = time.monotonic()
        start = ["broker", "start", "--engine", "kafka", "--nodes", "3", "--data-dir", str(data)]
        started = cli(*start, timeout=200)
        assert started.returncode == 0, started.stderr
        demo = cli("demo", "--engine", "kafka", timeout=300)
        assert demo.returncode == 0, demo.stderr
        assert "every step below runs as its own user" in demo.stdout
        assert "police received 140 of 300 certificates" in demo.stdout
        demo_took = time.monotonic() - began
        police_pw = data / "credentials" / "police.password"
        assert police_pw.stat().st_mode & 0o777 == 0o600

        assert cli("broker", "stop", timeout=90).returncode == 0
        again = cli("broker", "start", "--engine", "kafka", timeout=200)
        assert again.returncode == 0, again.stderr

        explain = cli("explain", "--as", "police", "birth_medical_certificate")
        assert explain.returncode == 0, explain.stderr
        assert "is revoked" in explain.stdout  # the demo's grant, after a full restart
        cli.env["EXCHANGE_SASL_USERNAME"] = "auditor"
        verified = cli("audit", "verify")
        assert verified.returncode == 0, verified.stderr
        intact = re.search(r"intact: (\d+) entries", verified.stdout)
        assert intact, verified.stdout
        cli.env["EXCHANGE_SASL_USERNAME"] = "police"
        peek = cli("peek", "gov.src.health.birth_medical_certificate")
        assert peek.returncode == 2
        assert "the broker refused User:police to read topic gov.src.health" in peek.stderr
        cli.env["EXCHANGE_SASL_USERNAME"] = "hrss"
        own = cli("peek", "gov.dlv.hrss.birth_medical_certificate", "--max", "300")
        assert own.returncode == 0, own.stderr
        assert "300 records" in own.stderr
        print(
            f"\ncluster started and demo run as each principal in {demo_took:.0f} s; after a "
            f"full restart: grant still revoked, {intact[1]} audit entries intact (read as "
            "auditor), police refused by the broker on health's source, hrss reads its 300"
        )
    finally:
        cli.env.pop("EXCHANGE_SASL_USERNAME", None)
        cli("broker", "stop", timeout=90)
        if (data / "cluster.json").exists():
            KafkaCluster(data).stop()

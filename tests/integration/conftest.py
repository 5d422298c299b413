"""Integration fixtures: a real Kafka-protocol broker, never a mock.

The suite runs in two lanes (``make test`` runs both), chosen with ``--engine``:

``--engine embedded`` (the default)
    each test module gets its own embedded broker (Tansu, in memory, started in
    well under a second), so modules cannot see each other's catalog or grants.
``--engine kafka``
    one Apache Kafka cluster for the session: 3 KRaft nodes, SASL/SCRAM-SHA-512,
    the StandardAuthorizer with ACLs deny-by-default, replication factor 3 and
    ``min.insync.replicas=2``. Every principal of the bus gets its user and ACLs
    (``exchange.admin.users.provision``); a test acts as a principal with
    ``principals.of("police")``, and ``bus`` is the cluster's super user. Each
    module starts from an empty cluster: the topics and consumer groups the
    previous module made are deleted first.

``EXCHANGE_BOOTSTRAP_SERVERS`` set (embedded lane): every test talks to that
Kafka instead (use an empty cluster). A test that can run on one engine only
is marked ``embedded_only(reason)`` or ``kafka_only(reason)`` and skipped on
the other lane with that reason.

Tests on Apache Kafka ask for ``kafka_jars`` first: the server's jars are
fetched from Maven Central once (``exchange/dev/kafka.py``) and re-used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lanes import KAFKA_NODES, fresh_bus

from exchange.admin import users
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.dev.kafka import KafkaCluster, KafkaEngineError, fetch_jars

pytestmark = pytest.mark.integration


def engine(config: pytest.Config) -> str:
    return str(config.getoption("--engine"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lane = engine(config)
    for item in items:
        for name, runs_on in (("embedded_only", "embedded"), ("kafka_only", "kafka")):
            marker = item.get_closest_marker(name)
            if marker is not None and lane != runs_on:
                why = marker.args[0] if marker.args else f"runs on the {runs_on} engine only"
                item.add_marker(pytest.mark.skip(reason=f"{runs_on} engine only: {why}"))


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The Apache Kafka server's jars, fetched with mvn the first time (needs mvn and java)."""
    try:
        return fetch_jars()
    except KafkaEngineError as exc:
        pytest.exit(f"cannot run the tests on Apache Kafka: {exc}", returncode=3)


@pytest.fixture(scope="session")
def kafka_lane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster | None]:
    """The Kafka lane's cluster (3 nodes, SASL, ACLs), None on the embedded lane."""
    if engine(request.config) != "kafka":
        yield None
        return
    request.getfixturevalue("kafka_jars")
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-lane"), KAFKA_NODES)
    began = time.monotonic()
    cluster.start()
    print(f"\nkafka lane: {KAFKA_NODES} nodes serving after {time.monotonic() - began:.1f} s")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def bus(kafka_lane: KafkaCluster | None) -> Iterator[Connection]:
    """The module's bus, empty when the module starts."""
    yield from fresh_bus(kafka_lane)


@pytest.fixture(scope="module")
def principals(
    bus: Connection,
    kafka_lane: KafkaCluster | None,
    sample_catalog: Catalog,
    tmp_path_factory: pytest.TempPathFactory,
) -> users.Principals:
    """Each principal's connection: its own user and ACLs on the Kafka lane, ``bus`` else."""
    if kafka_lane is None:
        return users.Principals(bus)
    credentials = tmp_path_factory.mktemp("credentials")
    users.provision(bus, sample_catalog, credentials)
    return users.Principals(bus, credentials)


@pytest.fixture(scope="module")
async def loaded_catalog(bus: Connection, sample_catalog: Catalog) -> Catalog:
    """The sample catalog, loaded on the module's broker."""
    await catalog_store.load(bus, sample_catalog, actor="tests", unsigned_override="test suite")
    return sample_catalog

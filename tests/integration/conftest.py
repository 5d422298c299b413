"""Integration fixtures: a real Kafka-protocol broker, never a mock.

``EXCHANGE_BOOTSTRAP_SERVERS`` set: every test talks to that Kafka (use an
empty cluster; tests isolate themselves by unique ids). Not set: each test
module gets its own embedded broker (Tansu, in memory, started in well
under a second), so modules cannot see each other's catalog or grants.

Tests on Apache Kafka ask for ``kafka_jars`` first: the server's jars are
fetched from Maven Central once (``exchange/dev/kafka.py``) and re-used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.dev.broker import EmbeddedBroker
from exchange.dev.kafka import KafkaEngineError, fetch_jars

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    given = os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The Apache Kafka server's jars, fetched with mvn the first time (needs mvn and java)."""
    try:
        return fetch_jars()
    except KafkaEngineError as exc:
        pytest.exit(f"cannot run the tests on Apache Kafka: {exc}", returncode=3)


@pytest.fixture(scope="module")
async def loaded_catalog(bootstrap: str, sample_catalog: Catalog) -> Catalog:
    """The sample catalog, loaded on the module's broker."""
    await catalog_store.load(bootstrap, sample_catalog, actor="tests")
    return sample_catalog

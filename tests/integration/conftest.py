"""Integration fixtures: a real Kafka-protocol broker, never a mock.

``EXCHANGE_BOOTSTRAP_SERVERS`` set: every test talks to that Kafka (use an
empty cluster; tests isolate themselves by unique ids). Not set: each test
module gets its own embedded broker (Tansu, in memory, started in well
under a second), so modules cannot see each other's catalog or grants.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.dev.broker import EmbeddedBroker

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


@pytest.fixture(scope="module")
async def loaded_catalog(bootstrap: str, sample_catalog: Catalog) -> Catalog:
    """The sample catalog, loaded on the module's broker."""
    await catalog_store.load(bootstrap, sample_catalog, actor="tests")
    return sample_catalog

"""Fixtures shared by every test.

The database servers are the suite's own: a throwaway PostgreSQL and MariaDB
(``exchange/dev/databases.py``) started the first time a test asks for one,
and stopped, their data removed, when the session ends, also after failures
or Ctrl-C. Nothing here connects to a server someone else started.
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.dev.databases import DatabaseServerError, ThrowawayMariaDB, ThrowawayPostgres

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CATALOG = ROOT / "schemas"


@pytest.fixture(scope="session")
def sample_catalog() -> Catalog:
    return load_catalog(SAMPLE_CATALOG)


def _serve(kind: type[ThrowawayPostgres] | type[ThrowawayMariaDB]) -> Iterator[Any]:
    try:
        server = kind().start()
    except DatabaseServerError as exc:
        pytest.exit(str(exc), returncode=3)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL of the session's own: database ``test``, user ``postgres``, no password."""
    yield from _serve(ThrowawayPostgres)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[ThrowawayMariaDB]:
    """A MariaDB of the session's own: user ``root``, no password; tests make their databases."""
    yield from _serve(ThrowawayMariaDB)


def pytest_configure(config: pytest.Config) -> None:
    # read by modules at import (e.g. the routers' session timeouts), before any fixture
    os.environ["EXCHANGE_TEST_ENGINE"] = str(config.getoption("--engine"))
    _name_where_consumers_are_made()


def _name_where_consumers_are_made() -> None:
    """A consumer never stopped is reported by the garbage collector, in whichever test it
    happens to run (``ResourceWarning: Unclosed AIOKafkaConsumer``, an error here): the
    warning then says where the consumer was made, which the collector cannot."""
    made = AIOKafkaConsumer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        self._made_at = "".join(traceback.format_stack(limit=14)[:-1])
        made(self, *args, **kwargs)

    def delete(self: Any, _warnings: Any = warnings) -> None:
        if getattr(self, "_closed", True) is False:
            _warnings.warn(
                f"Unclosed AIOKafkaConsumer {self!r}, made at:\n{getattr(self, '_made_at', '?')}",
                ResourceWarning,
                source=self,
            )

    AIOKafkaConsumer.__init__ = init  # type: ignore[method-assign]
    AIOKafkaConsumer.__del__ = delete  # type: ignore[attr-defined]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engine",
        choices=("embedded", "kafka"),
        default="embedded",
        help="the broker the integration tests run on: embedded (Tansu, one per module) or "
        "kafka (one 3-node Apache Kafka cluster with SASL and ACLs for the session)",
    )

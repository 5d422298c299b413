"""A consumer whose start fails, or is cancelled half-way, is closed all the same.

An unclosed aiokafka consumer holds its connections until the garbage collector
finds it (``ResourceWarning: Unclosed AIOKafkaConsumer``): in a long-running
router or console, sockets kept for nothing; in the suite, a warning raised in
whichever test the collector happens to run. These start against a port where
nothing listens, so every start fails, and against one that accepts the
connection and never answers, where the start is cancelled while it waits.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import Iterator

import pytest

from exchange.bus.connection import Connection
from exchange.clients.reader import Reader
from exchange.console.audit_tail import AuditTail
from exchange.control import state
from exchange.errors import ExchangeError


def _closed_port() -> Connection:
    with socket.socket() as s:  # a port just freed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Connection(f"127.0.0.1:{port}", development=True)


@pytest.fixture
def silent() -> Iterator[Connection]:
    """A listener that accepts connections and never answers a request."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield Connection(f"127.0.0.1:{s.getsockname()[1]}", development=True)


def _unclosed_after_gc() -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in seen if "Unclosed AIOKafkaConsumer" in str(w.message)]


STARTS = pytest.mark.parametrize(
    "start",
    [
        lambda bus: state.load(bus),
        lambda bus: AuditTail(bus, timeout_s=1).read(),
        lambda bus: Reader(bus, "gov.dlv.police.x").start(),
    ],
    ids=["control state load", "console audit tail", "reader"],
)


@STARTS
async def test_a_failed_start_leaves_no_consumer_open(start) -> None:  # type: ignore[no-untyped-def]
    _unclosed_after_gc()
    with pytest.raises((ExchangeError, OSError)):
        await asyncio.wait_for(start(_closed_port()), 30)
    assert _unclosed_after_gc() == []


@STARTS
async def test_a_start_cancelled_half_way_leaves_no_consumer_open(start, silent) -> None:  # type: ignore[no-untyped-def]
    _unclosed_after_gc()
    with pytest.raises(TimeoutError):  # the start waits on the silent broker: cancelled
        await asyncio.wait_for(start(silent), 0.5)
    assert _unclosed_after_gc() == []

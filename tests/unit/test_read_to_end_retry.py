"""read_to_end: a client whose end-offsets request goes unanswered is replaced, a few times."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.errors import BrokerUnavailable

BUS = Connection("127.0.0.1:9")


async def test_an_unanswered_client_is_replaced_and_the_next_answer_is_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    async def read_once(bus: Connection, topic: str, *, timeout_s: float) -> list[Any]:
        calls.append(topic)
        if len(calls) == 1:
            raise KafkaTimeoutError("Failed to get offsets by times in 10000 ms")
        return ["record"]

    monkeypatch.setattr(kafka, "_read_once", read_once)
    assert await kafka.read_to_end(BUS, "gov.ctl.schemas") == ["record"]
    assert calls == ["gov.ctl.schemas", "gov.ctl.schemas"]


async def test_no_answer_from_every_client_is_a_broker_unavailable_naming_the_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0

    async def read_once(bus: Connection, topic: str, *, timeout_s: float) -> list[Any]:
        nonlocal calls
        calls += 1
        raise KafkaTimeoutError("Failed to get offsets by times in 10000 ms")

    monkeypatch.setattr(kafka, "_read_once", read_once)
    with pytest.raises(BrokerUnavailable, match=r"did not answer where gov\.ctl\.catalog ends"):
        await kafka.read_to_end(BUS, "gov.ctl.catalog")
    assert calls == kafka.READ_ATTEMPTS

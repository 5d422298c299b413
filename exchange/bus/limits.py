"""How large a record may be on the bus, checked for a whole batch before any of it is sent.

A record that Kafka or the router would refuse must be refused before its
batch leaves, or a batch is half sent. Three limits apply:

* the router's: a source value (Confluent framing and Avro body) of at most
  :data:`MAX_VALUE_BYTES`; the router dead-letters a larger one, so no
  subscriber would ever receive it;
* the producer's ``max_request_size`` (:data:`exchange.bus.kafka.MAX_REQUEST_SIZE`):
  aiokafka refuses a larger record;
* the topic's ``max.message.bytes``: the broker refuses a larger record batch.
  :func:`topic_limits` reads it from the broker; a topic that does not say
  (or does not exist yet) gets the broker's ``message.max.bytes``, and a broker
  that does not say either gets Kafka's default, and the limit says which.

The last two apply to a record's size as produced: the size of a record batch
holding it alone, with its key and headers, as aiokafka counts it before
sending (:func:`framed_size`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.errors import RecordTooLarge

MAX_VALUE_BYTES = 1_000_000
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes when nobody sets it
_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION


@dataclass(frozen=True)
class Limit:
    """A size limit in bytes and what sets it, in words."""

    bytes: int
    by: str


REQUEST = Limit(kafka.MAX_REQUEST_SIZE, "the producer's max_request_size")


class Outgoing(Protocol):
    """A record about to be sent, as the check sees it (``exchange.clients.publisher.Prepared``)."""

    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...
    @property
    def resource(self) -> str: ...
    @property
    def line(self) -> int | None: ...


def framed_size(p: Outgoing) -> int:
    """Bytes of a record batch holding ``p`` alone: what aiokafka checks before sending."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(p.key, p.value, p.headers))


def check(prepared: Sequence[Outgoing], limits: Mapping[str, Limit]) -> None:
    """Raise :class:`RecordTooLarge` for the first record over a limit.

    ``limits`` holds the topics' limits (:func:`topic_limits`); without its
    topic's, a record is checked against the producer's and the router's only.
    The record is named by its line if it has one, else by its index in ``prepared``.
    """
    for index, p in enumerate(prepared):
        topic = limits.get(p.topic)
        batch = REQUEST if topic is None or REQUEST.bytes <= topic.bytes else topic
        other = topic if batch is REQUEST else REQUEST
        also = f" (the other limit, {other.bytes} bytes, is {other.by})" if other else ""
        where: dict[str, Any] = {"line": p.line} if p.line is not None else {"index": index}
        size = framed_size(p)
        if size > batch.bytes:
            raise RecordTooLarge(
                f"record is {size} bytes as produced (Avro value in Confluent framing, key "
                f"and headers), over the limit of {batch.bytes} bytes set by {batch.by}{also}",
                resource=p.resource,
                size=size,
                limit=batch.bytes,
                limit_by=batch.by,
                **where,
            )
        if p.value is not None and len(p.value) > MAX_VALUE_BYTES:
            raise RecordTooLarge(
                f"value is {len(p.value)} bytes (Avro in Confluent framing), over the router's "
                f"limit of {MAX_VALUE_BYTES} bytes: it would go to the dead-letter topic "
                f"{topics.dead_letter(p.resource)}, never to a subscriber",
                resource=p.resource,
                size=len(p.value),
                limit=MAX_VALUE_BYTES,
                limit_by="the router",
                **where,
            )


async def topic_limits(bus: Connection, names: Iterable[str]) -> dict[str, Limit]:
    """Each topic's ``max.message.bytes`` as the broker reports it, or the fallback, saying so."""
    wanted = sorted(set(names))
    async with kafka.admin(bus) as admin:
        found, missing = await _topic_settings(admin, wanted)
        if len(found) == len(wanted):
            return found
        broker = await _broker_setting(admin)
    for name, why in missing.items():
        if broker is not None:
            found[name] = Limit(broker, f"the broker's message.max.bytes, as topic {name} {why}")
        else:
            found[name] = Limit(
                KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
                f"Kafka's default max.message.bytes, as topic {name} {why} and the broker "
                "reports no message.max.bytes",
            )
    return found


async def _topic_settings(
    admin: AIOKafkaAdminClient, names: list[str]
) -> tuple[dict[str, Limit], dict[str, str]]:
    """(limits the topics set, why the others have none) from one DescribeConfigs."""
    found: dict[str, Limit] = {}
    missing = dict.fromkeys(names, "reports none")
    try:
        # all configs: the embedded broker drops the connection on a filtered request
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
    except KafkaError as exc:
        return found, dict.fromkeys(names, f"config could not be read: {exc}")
    for error, message, _type, name, entries in _resources(responses):
        if name not in missing:
            continue
        if error:
            missing[name] = (
                "does not exist yet"
                if error == _UNKNOWN_TOPIC
                else f"config could not be read: {message or f'error {error}'}"
            )
            continue
        value = _setting(entries, "max.message.bytes")
        if value is not None:
            found[name] = Limit(value, f"max.message.bytes of topic {name}")
            del missing[name]
    return found, missing


async def _broker_setting(admin: AIOKafkaAdminClient) -> int | None:
    """The broker's ``message.max.bytes``, None if it does not say (or cannot be asked)."""
    with contextlib.suppress(KafkaError, LookupError, TypeError, ValueError):
        cluster = await admin.describe_cluster()
        node = cluster["controller_id"]
        if node is None or node < 0:
            node = cluster["brokers"][0]["node_id"]
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(node))]
        )
        for error, _message, _type, _name, entries in _resources(responses):
            if not error:
                return _setting(entries, "message.max.bytes")
    return None


def _resources(responses: list[Any]) -> list[tuple[int, str | None, int, str, list[Any]]]:
    return [tuple(r[:5]) for response in responses for r in response.resources]


def _setting(entries: list[Any], name: str) -> int | None:
    for entry in entries:
        if entry[0] == name and entry[1] is not None:
            return int(entry[1])
    return None

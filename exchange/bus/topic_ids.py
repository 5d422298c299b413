"""Topic ids (Kafka's identity of a topic, KIP-516), which aiokafka does not expose.

A topic deleted and created again under the same name is another topic with
the same name: its offsets start again from 0, and what a process read from
the old one is not on the bus any more. Offsets alone cannot always tell (the
new topic may have grown past where the old one was read); the topic id can:
every creation gets a new one. Brokers report it in Metadata version 10 and
later (Apache Kafka 2.8+, the embedded Tansu). aiokafka's Metadata request
stops at version 5, so this module adds version 10 (flexible encoding, the
UUID type) and asks for it where the broker supports it.

Public surface: :func:`topic_ids`.
"""

from __future__ import annotations

import uuid
from io import BytesIO
from typing import Any, TypeAlias

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    AbstractType,
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION
_ZERO = uuid.UUID(int=0)


class _Uuid(AbstractType[uuid.UUID]):  # type: ignore[misc]
    """Kafka's UUID: 16 bytes, big-endian."""

    @classmethod
    def encode(cls, value: uuid.UUID) -> bytes:
        return value.bytes

    @classmethod
    def decode(cls, data: BytesIO) -> uuid.UUID:
        raw = data.read(16)
        if len(raw) != 16:
            raise ValueError("Buffer underrun decoding UUID")
        return uuid.UUID(bytes=raw)


class _MetadataResponse_v10(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_authorized_operations", Int32),
        ("tags", TaggedFields),
    )


class _MetadataRequest_v10(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 10
    RESPONSE_TYPE = _MetadataResponse_v10
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("topic_id", _Uuid),
                ("name", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


_Struct: TypeAlias = _MetadataRequest_v10


class _TopicIdsRequest(Request[_Struct]):  # type: ignore[misc]
    """Metadata v10 about ``names`` (never creating them); refused by older brokers."""

    API_KEY = 3

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def build(self, request_struct_class: type[_Struct]) -> _Struct:
        topics: list[tuple[uuid.UUID, str, dict[int, bytes]]] = [
            (_ZERO, name, {}) for name in self._names
        ]
        return request_struct_class(topics, False, False, False, {})


async def topic_ids(client: Any, names: list[str]) -> dict[str, uuid.UUID | None] | None:
    """Each topic's id (None: the topic does not exist), from any broker of ``client``.

    ``client`` is an aiokafka client (a consumer's or an admin client's ``_client``).
    None when the broker does not report topic ids (Metadata v10 not supported, or a
    zero id), so the caller falls back on offsets.
    """
    try:
        answer = await client.send(client.get_random_node(), _TopicIdsRequest(names))
    except NotImplementedError:  # Metadata v10 is not among the broker's versions
        return None
    out: dict[str, uuid.UUID | None] = {}
    for error_code, name, topic_id, *_ in answer.topics:
        if error_code == _UNKNOWN_TOPIC:
            out[name] = None
        elif error_code == 0:
            if topic_id == _ZERO:
                return None
            out[name] = topic_id
    return out

"""Kafka plumbing shared by every component: where the broker is, clients, topics.

Two facts of the embedded broker shape this module (see DESIGN.md §3): its
ListOffsets answer for "latest" may be lower than the real end of a
partition, and it has no idempotent producer. :func:`read_to_end` therefore
never trusts ``end_offsets()`` alone; it keeps reading until its position
reaches the high watermark carried by fetch responses, which is right on
both the embedded broker and real Kafka.

A third shapes how clients start: aiokafka's bootstrap asks for the metadata
of every topic of the cluster, and decodes it in Python. A bus has a delivery
topic per view (3,600 grants: over 4,000 topics), so each client start cost
half a second, and more as grants were made. Clients made here ask about one
control topic instead (:class:`_BootstrapRequest`), and :func:`ensure_topics`
asks only about the topics it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import client as aiokafka_client
from aiokafka import errors as aiokafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest

from exchange.bus import topic_config, topics
from exchange.bus.connection import Connection
from exchange.bus.fetch_sessions import SessionConsumer
from exchange.errors import AccessRefused, BrokerUnavailable

MAX_REQUEST_SIZE = 1_048_576  # aiokafka's default, stated: exchange.bus.limits checks against it
MAX_BATCH_SIZE = 256 * 1024
CONTROL_PARTITIONS = 1  # one total order of the control and audit topics

_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION
_NOT_AUTHORIZED = 29  # TOPIC_AUTHORIZATION_FAILED

#: what a client's bootstrap asks about: it needs only the brokers, which come with any answer
_PROBE = topics.CATALOG


class _BootstrapRequest(MetadataRequest):  # type: ignore[misc]
    """aiokafka's bootstrap ``MetadataRequest([])``, narrowed to :data:`_PROBE`.

    ``[]`` means every topic to the embedded broker (and to version 0 of the
    request). Other requests are unchanged; a topic is never created by asking.
    """

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
    ) -> None:
        if topics == []:
            topics, allow_auto_topic_creation = [_PROBE], False
        super().__init__(topics, allow_auto_topic_creation)


class _QuietProbe(logging.Filter):
    """On a bus with no catalog yet the probe topic does not exist: that is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.args == (_PROBE,) and "not found" in str(record.msg))


aiokafka_client.MetadataRequest = _BootstrapRequest
logging.getLogger("aiokafka.cluster").addFilter(_QuietProbe())
log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def admin(bus: Connection, **overrides: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client, started (:class:`BrokerUnavailable` naming the address if no broker
    answers) and closed when the block ends."""
    options: dict[str, Any] = {"client_id": "gov-exchange-admin", **overrides}
    client = AIOKafkaAdminClient(**bus.client_options(), **options)
    try:
        await client.start()
    except BaseException as exc:  # closed however the start ends, cancelled half-way too
        await client.close()
        if isinstance(exc, KafkaError | OSError):
            raise unavailable(bus, exc) from exc
        raise
    try:
        yield client
    finally:
        await client.close()


def unavailable(bus: Connection, exc: BaseException) -> BrokerUnavailable:
    """The error of a client that could not reach (or log in to) the bus."""
    return BrokerUnavailable(f"cannot reach Kafka at {bus.describe()}: {exc}")


def producer(bus: Connection, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas (acks=all) and keeps per-key order;
    idempotent where the connection says the broker supports it."""
    options: dict[str, Any] = {
        **bus.client_options(),
        "acks": "all",
        "enable_idempotence": bus.idempotence,
        "linger_ms": 5,
        "max_batch_size": MAX_BATCH_SIZE,
        "max_request_size": MAX_REQUEST_SIZE,
        "request_timeout_ms": 30_000,
        "client_id": "gov-exchange",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


class FewKeysPartitioner:
    """Kafka's default partitioner (murmur2 of the key), remembering the partitions of the
    last ``size`` keys: for a producer that writes a few keys many times (an audit writer
    writes one: its chain's id), where hashing each record in pure Python shows in a
    profile. Keyless records go to a random available partition, as by default."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._known: dict[tuple[bytes, tuple[int, ...]], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(random.choice(available or all_partitions))  # noqa: S311 (spread, not secrecy)
        spot = (key, tuple(all_partitions))
        partition = self._known.get(spot)
        if partition is None:
            if len(self._known) >= self.size:
                self._known.clear()
            partition = all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]
            self._known[spot] = partition
        return partition


def consumer(bus: Connection, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that starts at the earliest offset and commits only when told to.

    On Apache Kafka its fetches use incremental fetch sessions
    (:mod:`exchange.bus.fetch_sessions`): a consumer of hundreds of partitions no longer
    encodes and decodes all of them at every fetch."""
    options: dict[str, Any] = {
        **bus.client_options(),
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "client_id": "gov-exchange",
    }
    options.update(overrides)
    if bus.development:  # the embedded broker: plain fetches
        return AIOKafkaConsumer(*topics, **options)
    # Apache Kafka: each fetch names only the partitions whose position moved
    return SessionConsumer(*topics, **options)


async def ensure_topics(
    bus: Connection,
    names: Iterable[str],
    *,
    partitions: int | None = 1,
    others_may_create: bool = False,
) -> None:
    """Create the topics that do not exist yet (idempotent), configured for what they hold.

    Replication, ``min.insync.replicas`` and retention or compaction come from the
    connection's topic policy, by topic family; ``partitions``: None for the policy's
    (``EXCHANGE_PARTITIONS``). ``others_may_create``: a topic this principal has no right
    to create is waited for, made by whoever has (a department's delivery topic: the
    router makes it when it applies the subscription), not refused at once.
    """
    async with admin(bus) as client:
        await create_missing_topics(
            client,
            sorted(set(names)),
            bus.topics,
            partitions=partitions,
            others_may_create=others_may_create,
        )


#: topics per CreateTopics request: Apache Kafka refuses a request that would write too many
#: metadata records at once (3,600 topics in one request: POLICY_VIOLATION for every one,
#: measured), and one request of thousands outlasts the request timeout of a busy
#: embedded broker
CREATE_BATCH = 500
#: how long topics asked for may stay invisible with none of them appearing meanwhile
CREATE_STALL_S = 90.0
_TOPIC_EXISTS = 36  # TOPIC_ALREADY_EXISTS
_THROTTLED = 89  # THROTTLING_QUOTA_EXCEEDED: retriable, though aiokafka does not say so
_OTHERS_CREATE = (
    "not this principal's to create (TopicAuthorizationFailedError); waited for whoever "
    "may create it (the router makes each subscriber's delivery topic: is it running?)"
)


async def create_missing_topics(
    admin: AIOKafkaAdminClient,
    names: Iterable[str],
    policy: topic_config.TopicPolicy,
    *,
    partitions: int | None = 1,
    others_may_create: bool = False,
) -> list[str]:
    """:func:`ensure_topics` with a started admin client (any credentials); the topics made.

    Asks in requests of :data:`CREATE_BATCH` topics and returns once every topic is in the
    cluster's metadata, ready for clients: a Kafka controller accepts thousands of topics
    in seconds, but its brokers then take a minute or more to show them all (about 90 a
    second on one busy node, measured). A topic refused for good (a bad configuration, a
    replication factor the cluster cannot give, no right to create it, a request too
    large) raises :class:`BrokerUnavailable` at once, naming the topic and the broker's
    error. A request that times out, or a topic answered with a retriable error, is asked
    for again. While topics keep appearing it waits; after :data:`CREATE_STALL_S` with
    none appearing, :class:`BrokerUnavailable` names those still missing and why.
    """
    wanted = sorted(set(names))
    missing = await _missing_topics(admin, wanted)
    made = list(missing)
    failures = await _ask_to_create(admin, missing, policy, partitions, others_may_create)
    last_change, before = time.monotonic(), len(missing)
    while missing:
        await asyncio.sleep(0.5)
        missing = await _missing_topics(admin, missing)
        if len(missing) < before:
            last_change, before = time.monotonic(), len(missing)
        # refused for a while (a timeout, a busy controller): ask again
        retry = [n for n in missing if n in failures and failures[n] != _OTHERS_CREATE]
        if retry:
            failures = {
                **{n: why for n, why in failures.items() if n not in retry},
                **await _ask_to_create(admin, retry, policy, partitions, others_may_create),
            }
        if missing and time.monotonic() - last_change > CREATE_STALL_S:
            named = ", ".join(
                f"{n} ({failures.get(n, 'accepted, not shown')})" for n in missing[:5]
            )
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise BrokerUnavailable(
                f"{len(missing)} topic(s) still not in the cluster's metadata after "
                f"{CREATE_STALL_S:.0f} s without one appearing: {named}{more}"
            )
    return made


async def _ask_to_create(
    admin: AIOKafkaAdminClient,
    names: list[str],
    policy: topic_config.TopicPolicy,
    partitions: int | None,
    others_may_create: bool = False,
) -> dict[str, str]:
    """Send CreateTopics for ``names`` in batches; the topics to ask for again, and why
    (:data:`_OTHERS_CREATE`: not to ask again, but to wait for)."""
    failures: dict[str, str] = {}
    for at in range(0, len(names), CREATE_BATCH):
        batch = names[at : at + CREATE_BATCH]
        try:
            answer = await admin.create_topics([_new_topic(n, policy, partitions) for n in batch])
        except (TimeoutError, KafkaError) as exc:
            if not getattr(exc, "retriable", True):
                raise
            failures.update(dict.fromkeys(batch, repr(exc)))
            continue
        for name, code, message in _topic_errors(answer):
            if code in (0, _TOPIC_EXISTS):
                continue
            error = aiokafka_errors.for_code(code)
            if others_may_create and code == _NOT_AUTHORIZED:
                failures[name] = _OTHERS_CREATE
                continue
            if not error.retriable and code != _THROTTLED:
                raise BrokerUnavailable(
                    f"the broker refused to create topic {name}: {error.__name__} "
                    f"(code {code}){': ' + message if message else ''}"
                )
            failures[name] = f"{error.__name__}: {message}" if message else error.__name__
    return failures


async def _missing_topics(admin: AIOKafkaAdminClient, wanted: list[str]) -> list[str]:
    """Which of ``wanted`` the cluster's metadata lacks (a topic this principal may not
    even describe is not its to create: ACLs). Asks about these alone, never creating."""
    # only these topics' metadata (list_topics() fetches every topic's)
    answer = await admin._send_request(MetadataRequest(wanted, False))
    errors = {t["topic"]: t["error_code"] for t in answer.to_object()["topics"]}
    return [n for n in wanted if errors.get(n, _UNKNOWN_TOPIC) not in (0, _NOT_AUTHORIZED)]


def _new_topic(name: str, policy: topic_config.TopicPolicy, partitions: int | None) -> NewTopic:
    return NewTopic(
        name,
        num_partitions=policy.partitions if partitions is None else partitions,
        replication_factor=policy.replication_factor,
        topic_configs=policy.configs(name),
    )


def _topic_errors(answer: Any) -> list[tuple[str, int, str]]:
    """(topic, error code, message) of a CreateTopics response, whatever its version."""
    out = []
    for t in answer.to_object()["topic_errors"]:
        out.append((t["topic"], t["error_code"], t.get("error_message") or ""))
    return out


async def existing_topics(c: AIOKafkaConsumer, names: Iterable[str]) -> set[str]:
    """Which of ``names`` exist, asking about those alone and never creating one (a plain
    metadata request by name makes a broker with auto-create create the topic)."""
    wanted = sorted(set(names))
    if not wanted:
        return set()
    client = c._client
    answer = await client.send(client.get_random_node(), MetadataRequest(wanted, False))
    return {t["topic"] for t in answer.to_object()["topics"] if t["error_code"] == 0}


def refused(bus: Connection, operation: str, topic: str) -> AccessRefused:
    """The error of an operation the broker's ACLs do not allow this principal."""
    who = bus.principal or "this client"
    return AccessRefused(
        f"the broker refused {who} to {operation} topic {topic}: its ACLs do not allow it "
        "(a department reads only its own gov.dlv.<dept>.* and writes only its own "
        "gov.src.<dept>.*; see 'exchange acls')"
    )


def require_authorized(c: AIOKafkaConsumer, bus: Connection, topic: str) -> None:
    """Raise :class:`AccessRefused` if the broker would not even describe ``topic`` to ``c``
    (aiokafka only logs it, and a consumer would then wait for ever)."""
    if topic in c._client.cluster.unauthorized_topics:
        raise refused(bus, "read", topic)


async def reconfigure_topics(bus: Connection, names: Iterable[str]) -> None:
    """Set existing topics' configuration to what the connection's policy gives them
    (retention, cleanup, min.insync.replicas: the whole set the bus manages)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async with admin(bus) as client:
        await client.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, n, configs=bus.topics.configs(n))
                for n in sorted(set(names))
            ]
        )


def refresh_metadata(c: AIOKafkaConsumer) -> None:
    """Ask for the cluster's metadata now, in the background (aiokafka has no public call
    for this): a consumer subscribed by pattern sees topics created since its last ask."""
    c._client.force_metadata_update()


async def topic_partitions(c: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (refreshing the metadata once if unknown); [] if none."""
    partitions = c.partitions_for_topic(topic)
    if not partitions:  # ask about this topic (aiokafka has no public call for this)
        await c._client.add_topic(topic)
        partitions = c.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


#: how long one client of :func:`read_to_end` waits for the end offsets before it gives up
#: and a new client asks: on CI's 3-node cluster, after brokers were killed and restarted,
#: one ListOffsets went unanswered for aiokafka's whole 40 s request timeout while a fresh
#: client asking the same thing at once was answered
END_OFFSETS_ATTEMPT_MS = 10_000
READ_ATTEMPTS = 3


async def read_to_end(bus: Connection, topic: str, *, timeout_s: float = 15.0) -> list[Any]:
    """Every record of ``topic`` from the beginning to its current end, in partition order.

    A client whose end-offsets request is not answered within
    :data:`END_OFFSETS_ATTEMPT_MS` is replaced by a new one (new connections, new
    metadata), up to :data:`READ_ATTEMPTS` clients; then :class:`BrokerUnavailable`."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return await _read_once(bus, topic, timeout_s=timeout_s)
        except aiokafka_errors.KafkaTimeoutError as exc:
            if attempt == READ_ATTEMPTS:
                raise BrokerUnavailable(
                    f"{bus.describe()} did not answer where {topic} ends "
                    f"({READ_ATTEMPTS} clients, {END_OFFSETS_ATTEMPT_MS / 1000:g} s each)"
                ) from exc
            log.warning("%s: end offsets of %s not answered (%s); asking again", bus, topic, exc)
    raise AssertionError("unreachable")


async def _read_once(bus: Connection, topic: str, *, timeout_s: float) -> list[Any]:
    c = consumer(bus)
    try:  # stopped however it ends, also cancelled or failed mid-start
        try:
            await c.start()
        except KafkaConnectionError as exc:
            raise unavailable(bus, exc) from exc
        tps = await topic_partitions(c, topic)
        if not tps:
            return []
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        return await drain(c, tps, timeout_s=timeout_s, offsets_timeout_ms=END_OFFSETS_ATTEMPT_MS)
    finally:
        await c.stop()


async def drain(
    c: AIOKafkaConsumer,
    tps: list[TopicPartition],
    *,
    timeout_s: float,
    offsets_timeout_ms: int | None = None,
) -> list[Any]:
    """Read assigned partitions until each position reaches its high watermark.

    ``offsets_timeout_ms``: how long to wait for the end offsets (default: the consumer's
    request timeout); past it aiokafka's ``KafkaTimeoutError`` propagates."""
    ends = await c._fetcher.end_offsets(tps, offsets_timeout_ms or c._request_timeout_ms)
    end = LogEnd(c, ends)
    await end.settle(c, tps)
    out: list[Any] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while pending := await end.pending(c, tps):
        if asyncio.get_running_loop().time() > deadline:
            raise BrokerUnavailable(f"timed out reading {tps[0].topic} to its end")
        batch = await c.getmany(*pending, timeout_ms=200)
        end.observe(c, pending)
        for records in batch.values():
            out.extend(records)
    return out


class LogEnd:
    """Where each partition ended when a reader began, so that reading a busy topic ends.

    Apache Kafka answers end offsets exactly: they are the end. The embedded broker's may
    be low, so there each partition's end is raised once, to the high watermark of the
    first fetch response that arrives after the reading began, and then fixed: following
    the high watermark on never ended while routers kept appending to the topic. A high
    watermark a long-lived consumer saw before may be stale, even that of another topic
    of the same name, deleted and created again since, so it is not taken as the end.
    (On Kafka a fetch session's answer leaves out partitions with nothing new, so no
    fresh high watermark may ever come: another reason to trust its end offsets.)
    """

    def __init__(self, c: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        self.ends = dict(ends)
        # the consumers made for Apache Kafka (consumer()) are SessionConsumers
        self._exact = isinstance(c, SessionConsumer)
        self._known: set[TopicPartition] = set(ends) if self._exact else set()
        self._since_ms = int(1000 * time.time())  # aiokafka stamps fetch responses so

    async def settle(self, c: AIOKafkaConsumer, tps: Iterable[TopicPartition]) -> None:
        """Count as read to its end each partition ``c`` has fetched before and read up to
        both the end offsets and the last high watermark it saw: a new fetch would only
        wait for records. The others wait for a fresh fetch response."""
        for tp in tps:
            hw = c.highwater(tp)
            if hw is not None and await c.position(tp) >= max(hw, self.ends[tp]):
                self._known.add(tp)

    def observe(self, c: AIOKafkaConsumer, tps: Iterable[TopicPartition]) -> None:
        """Take the first high watermark fetched since the reading began for each of ``tps``."""
        for tp in tps:
            if tp in self._known:
                continue
            hw, at = c.highwater(tp), c.last_poll_timestamp(tp)
            if hw is not None and at is not None and at >= self._since_ms:
                self._known.add(tp)
                self.ends[tp] = max(self.ends[tp], hw)

    async def pending(
        self, c: AIOKafkaConsumer, tps: Iterable[TopicPartition]
    ) -> list[TopicPartition]:
        """The partitions of ``tps`` not yet read to their end."""
        out = []
        for tp in tps:
            # not fetched yet: its end may be further than the end offsets said
            unknown = tp not in self._known and self.ends[tp] > 0
            if unknown or await c.position(tp) < self.ends[tp]:
                out.append(tp)
        return out


async def check_reachable(bus: Connection) -> None:
    """Raise :class:`BrokerUnavailable` with the address if no broker answers."""
    async with admin(bus, request_timeout_ms=5000):
        pass


async def ensure_control_topics(bus: Connection) -> None:
    """Create the control and audit topics (one partition each: one total order)."""
    await ensure_topics(bus, topics.CONTROL_TOPICS, partitions=CONTROL_PARTITIONS)


async def require_safe_control_topics(
    bus: Connection, names: Iterable[str] = topics.CONTROL_TOPICS
) -> None:
    """Refuse (:class:`~exchange.bus.topic_config.TopicsUnsafe`) control or audit topics that
    can lose entries or have fewer replicas than configured (see
    :func:`exchange.bus.topic_config.check_topics`)."""
    try:
        await topic_config.require_safe_topics(
            {**bus.client_options(), "client_id": "gov-exchange-admin"}, names, bus.topics
        )
    except KafkaConnectionError as exc:
        raise unavailable(bus, exc) from exc

"""What every topic of the bus is configured with, and the check at start that it still is.

=====================  ===========================================  ===============================
family                 topics                                       kept
=====================  ===========================================  ===============================
control, history       ``gov.ctl.catalog``, ``gov.ctl.grants``      forever (``retention.ms=-1``,
                                                                    ``retention.bytes=-1``): replay
                                                                    reads every snapshot and event
control, keyed         ``gov.ctl.schemas``, ``gov.ctl.book``,       compacted: the last record of
                       ``gov.ctl.backfill``, ``gov.ctl.resync``     each key (schema id, router,
                                                                    backfill of a view, request)
audit                  ``gov.audit``                                ``audit_retention_ms``: forever
                                                                    by default (hash chains)
sources                ``gov.src.<provider>.<resource>``            compacted (the latest record of
                                                                    each key: 全量 current state);
                                                                    or the catalog's
                                                                    ``source_retention_days``
deliveries             ``gov.dlv.<consumer>.<resource>``            ``delivery_retention_ms`` (7 d)
dead letters           ``gov.dlq.<resource>``                       ``dead_letter_retention_ms``
                                                                    (30 d)
=====================  ===========================================  ===============================

Every family is created with ``replication_factor`` replicas and, from 2 replicas on,
``min.insync.replicas = min(2, replication_factor)`` (with the producers' ``acks=all``,
a record acknowledged is on two brokers).

The audit log is kept forever by default: its entries are hash-chained per writer, so
an entry that falls out of the topic breaks ``exchange audit verify`` on the topic, and
the legal retention period of an access log differs by jurisdiction (often several
years). An operator who archives it (``exchange audit archive``) may set a finite
period (``EXCHANGE_AUDIT_RETENTION_MS``); the check then accepts that period or longer.

Source topics are compacted by default: every resource has a key field, its
value is the Kafka key, and a backfill (全量, :mod:`exchange.router.backfill`)
needs each key's latest record however old. A deletion is a tombstone (a
record with no value) that compaction keeps ``source_tombstone_ms`` (a day by
default) after it removed every older record of the key, so a deleted key
never comes back. A resource whose catalog entry declares
``source_retention_days`` keeps its records that long instead (delete by
time): its current state is then the last ``source_retention_days`` only.
With ``EXCHANGE_SOURCE_COMPACTION=false`` the platform's
``source_retention_ms`` applies to sources that declare nothing. The embedded
broker takes the settings and keeps everything in memory (it compacts
nothing): a backfill reads every record and keeps the latest per key itself,
which is what it does on Kafka too for the head not compacted yet.

The policy of a process is part of its :class:`~exchange.bus.connection.Connection`,
built once at its entry point from :class:`~exchange.settings.Settings`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exchange.bus import topics
from exchange.errors import ExchangeError

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient


DAY_MS = 24 * 3600 * 1000
FOREVER = -1

#: topics whose whole history a replay needs: a retention that can lose entries is refused
CONTROL_HISTORY = (topics.CATALOG, topics.GRANTS, topics.DISPUTES)
CONTROL_KEYED = (topics.SCHEMAS, topics.BOOK, topics.BACKFILL, topics.RESYNC)


@dataclass(frozen=True)
class TopicPolicy:
    """Partitions, replication and retention of the topics a process creates."""

    replication_factor: int = 1
    partitions: int = 3
    audit_retention_ms: int = FOREVER
    source_retention_ms: int = 7 * DAY_MS
    #: sources compacted (latest record per key) unless the catalog declares a retention
    source_compaction: bool = True
    #: how long a compacted source keeps a tombstone after the older records of its key
    source_tombstone_ms: int = DAY_MS
    delivery_retention_ms: int = 7 * DAY_MS
    dead_letter_retention_ms: int = 30 * DAY_MS
    #: (source topic, retention ms) the catalog sets for some resources
    source_overrides: tuple[tuple[str, int], ...] = ()

    def with_sources(self, retention_ms: dict[str, int]) -> TopicPolicy:
        """This policy with per-topic retentions of source topics (from the catalog)."""
        return dataclasses.replace(self, source_overrides=tuple(sorted(retention_ms.items())))

    def family(self, topic: str) -> str:
        """The family of ``topic``: control, audit, source, delivery, dead-letter or other."""
        if topic in topics.CONTROL_TOPICS and topic != topics.AUDIT:
            return "control"
        if topic == topics.AUDIT:
            return "audit"
        for prefix, name in (
            ("gov.src.", "source"),
            ("gov.dlv.", "delivery"),
            ("gov.dlq.", "dead-letter"),
        ):
            if topic.startswith(prefix):
                return name
        return "other"

    def configs(self, topic: str) -> dict[str, str]:
        """The topic configuration ``topic`` is created with."""
        out: dict[str, str] = {}
        if self.replication_factor >= 2:
            out["min.insync.replicas"] = str(min(2, self.replication_factor))
        if topic in CONTROL_KEYED:
            out["cleanup.policy"] = "compact"
            return out
        by_family = {
            "control": FOREVER,
            "audit": self.audit_retention_ms,
            "source": self.source_retention_ms,
            "delivery": self.delivery_retention_ms,
            "dead-letter": self.dead_letter_retention_ms,
        }
        overrides = dict(self.source_overrides)
        if self.source_compaction and self.family(topic) == "source" and topic not in overrides:
            out["cleanup.policy"] = "compact"
            out["delete.retention.ms"] = str(self.source_tombstone_ms)
            return out
        retention = overrides[topic] if topic in overrides else by_family.get(self.family(topic))
        if retention is not None:
            out["cleanup.policy"] = "delete"
            out["retention.ms"] = str(retention)
            if retention == FOREVER:
                out["retention.bytes"] = str(FOREVER)
        return out


# --- the check at start --------------------------------------------------------------


class TopicsUnsafe(ExchangeError):
    """A control or audit topic can lose entries, or has fewer replicas than configured."""


@dataclass(frozen=True)
class Problem:
    topic: str
    setting: str
    found: str
    wanted: str
    fix: str

    def __str__(self) -> str:
        return (
            f"topic {self.topic}: {self.setting} is {self.found}, must be {self.wanted}; "
            f"fix: {self.fix}"
        )


def _alter(topic: str, setting: str, value: str) -> str:
    return (
        "kafka-configs.sh --bootstrap-server <bootstrap> --command-config <admin.properties> "
        f"--alter --entity-type topics --entity-name {topic} --add-config {setting}={value}"
    )


def _keeps(ms_or_bytes: str | None, at_least: int) -> bool:
    """True if a retention of ``ms_or_bytes`` keeps at least ``at_least`` (-1: forever)."""
    if ms_or_bytes is None:
        return True  # not reported: see check_topics
    value = int(ms_or_bytes)
    if value < 0:
        return True
    return at_least >= 0 and value >= at_least


def problems_of(
    topic: str, entries: dict[str, str], replicas: int | None, policy: TopicPolicy
) -> list[Problem]:
    """What in ``entries`` (a topic's reported configuration) can lose the topic's entries."""
    found: list[Problem] = []
    cleanup = entries.get("cleanup.policy")
    compacted_only = cleanup is not None and "compact" in cleanup and "delete" not in cleanup
    if not compacted_only:  # deleted by time or size: neither may drop what replay needs
        keep = policy.audit_retention_ms if topic == topics.AUDIT else FOREVER
        wanted = "-1 (forever)" if keep < 0 else f"-1 (forever) or at least {keep}"
        if topic in CONTROL_KEYED:
            wanted += " or cleanup.policy=compact"
        ms = entries.get("retention.ms")
        if not _keeps(ms, keep):
            fix = _alter(topic, "retention.ms", str(keep))
            found.append(Problem(topic, "retention.ms", str(ms), wanted, fix))
        size = entries.get("retention.bytes")
        if size is not None and int(size) >= 0:
            fix = _alter(topic, "retention.bytes", "-1")
            found.append(Problem(topic, "retention.bytes", size, "-1 (no size limit)", fix))
    if replicas is not None and replicas < policy.replication_factor:
        found.append(
            Problem(
                topic,
                "replication factor",
                str(replicas),
                f"at least {policy.replication_factor} (EXCHANGE_REPLICATION_FACTOR)",
                f"kafka-reassign-partitions.sh --bootstrap-server <bootstrap> "
                f"--command-config <admin.properties> --execute --reassignment-json-file "
                f"<a plan giving each partition of {topic} {policy.replication_factor} replicas>",
            )
        )
    return found


async def check_topics(
    admin: AIOKafkaAdminClient,
    names: Iterable[str] = topics.CONTROL_TOPICS,
    policy: TopicPolicy = TopicPolicy(),
) -> list[Problem]:
    """The problems of the control and audit topics ``names`` (a started admin client).

    A topic that does not exist yet has none (it will be created right). Real Kafka
    reports every setting of a topic, its broker default included, so a stock
    broker's 7-day ``retention.ms`` on a topic created without one is found. The
    embedded broker (Tansu) reports only the settings a topic was created with and
    keeps everything in memory until it stops: a setting not reported is taken as
    safe, so it never raises a false alarm there.
    """
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    wanted = sorted(set(names))
    # all configs: the embedded broker drops the connection on a filtered request
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for error, _message, _type, name, entries, *_ in response.resources:
            if not error:
                configs[name] = {e[0]: e[1] for e in entries if e[1] is not None}
    replicas: dict[str, int] = {}
    with contextlib.suppress(Exception):  # replicas are checked where the broker says
        for described in await admin.describe_topics(wanted):
            if described["error_code"] == 0 and described["partitions"]:
                replicas[described["topic"]] = min(
                    len(p["replicas"]) for p in described["partitions"]
                )
    found: list[Problem] = []
    for name in wanted:
        if name in configs or name in replicas:
            found += problems_of(name, configs.get(name, {}), replicas.get(name), policy)
    return found


async def require_safe_topics(
    admin_options: dict[str, Any],
    names: Iterable[str] = topics.CONTROL_TOPICS,
    policy: TopicPolicy = TopicPolicy(),
) -> None:
    """Raise :class:`TopicsUnsafe` naming every problem of ``names`` (see :func:`check_topics`).

    ``admin_options`` are :class:`~aiokafka.admin.AIOKafkaAdminClient` options (at least
    ``bootstrap_servers``; SASL ones as Kafka's clients take them).
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**admin_options)
    try:  # closed however it ends, also cancelled or failed mid-start
        await admin.start()
        found = await check_topics(admin, names, policy)
    finally:
        await admin.close()
    if found:
        raise TopicsUnsafe(
            "refusing to start: control or audit topics can lose entries that replay needs\n"
            + "\n".join(f"  {p}" for p in found)
        )

"""Broker-level isolation for production: Kafka ACLs generated from the catalog.

The router enforces the shared list, but on a real cluster a department
could bypass it and read ``gov.src.*`` or another department's
``gov.dlv.*`` directly. These ACLs stop that at the broker (principals are
``User:<department id>``; map your SASL/mTLS identities to them):

========================  ===================================================================
principal                 may
========================  ===================================================================
``User:<dept>``           write ``gov.src.<dept>.*`` (its own sources, and read their size
                          limits); read ``gov.dlv.<dept>.*`` (its own deliveries) with consumer
                          groups ``<dept>.*``; read the catalog, schemas, grants and grant book;
                          write ``gov.ctl.grants`` (its commands) and ``gov.audit`` (their audit
                          entries)
``User:gov-router``       read every source; create and write deliveries and dead letters;
                          read control topics (and check their retention); write
                          ``gov.ctl.schemas`` (view schemas), ``gov.ctl.book`` (grant book
                          snapshots) and ``gov.audit``; consumer group of the routers
``User:catalog-admin``    write ``gov.ctl.catalog`` and ``gov.ctl.schemas``; create topics
``User:auditor``          read ``gov.audit`` (and check its retention) with consumer groups
                          ``auditor.*``
========================  ===================================================================

Nothing else is allowed: with ``allow.everyone.if.no.acl.found=false`` a
department cannot read another department's deliveries, anyone's sources,
or write anything but its own sources and commands.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog

ROUTER = "gov-router"
ROUTER_GROUP = "gov-exchange-router"  # the routers' consumer group (EXCHANGE_ROUTER_GROUP)
ADMIN = "catalog-admin"
AUDITOR = "auditor"


class Op(StrEnum):
    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: principal may do operation on a topic or group name (or prefix)."""

    principal: str
    resource_type: str  # "topic" | "group"
    name: str
    pattern: str  # "literal" | "prefixed"
    operation: Op

    def matches(self, principal: str, resource_type: str, name: str, operation: Op) -> bool:
        if principal != self.principal or resource_type != self.resource_type:
            return False
        if self.pattern == "literal" and name != self.name:
            return False
        if self.pattern == "prefixed" and not name.startswith(self.name):
            return False
        # Kafka: Read and Write imply Describe (Create does not)
        return operation == self.operation or (
            operation is Op.DESCRIBE and self.operation in (Op.READ, Op.WRITE)
        )


def user(principal: str) -> str:
    return f"User:{principal}"


def generate(catalog: Catalog, *, router_group: str = ROUTER_GROUP) -> list[Acl]:
    """Every ACL the bus needs, and no more, for the departments of ``catalog``."""
    acls: list[Acl] = []

    def allow(who: str, rtype: str, name: str, pattern: str, *ops: Op) -> None:
        acls.extend(Acl(user(who), rtype, name, pattern, op) for op in ops)

    for dept in sorted(catalog.departments):
        allow(dept, "topic", f"gov.src.{dept}.", "prefixed", Op.WRITE, Op.DESCRIBE_CONFIGS)
        allow(dept, "topic", f"gov.dlv.{dept}.", "prefixed", Op.READ)
        allow(dept, "group", f"{dept}.", "prefixed", Op.READ)
        for t in (topics.CATALOG, topics.SCHEMAS, topics.GRANTS, topics.BOOK, topics.BACKFILL):
            allow(dept, "topic", t, "literal", Op.READ)
        allow(dept, "topic", topics.GRANTS, "literal", Op.WRITE)
        allow(dept, "topic", topics.RESYNC, "literal", Op.WRITE)  # 'exchange resync' requests
        allow(dept, "topic", topics.DISPUTES, "literal", Op.READ, Op.WRITE)  # 疑义校核
        allow(dept, "topic", topics.AUDIT, "literal", Op.WRITE)

    allow(ROUTER, "topic", "gov.src.", "prefixed", Op.READ)
    allow(ROUTER, "topic", "gov.dlv.", "prefixed", Op.WRITE, Op.CREATE)
    allow(ROUTER, "topic", "gov.dlq.", "prefixed", Op.WRITE, Op.CREATE)
    for t in (topics.CATALOG, topics.SCHEMAS, topics.GRANTS):
        allow(ROUTER, "topic", t, "literal", Op.READ)
    for t in topics.CONTROL_TOPICS:  # the check at start: can a control topic lose entries?
        allow(ROUTER, "topic", t, "literal", Op.DESCRIBE_CONFIGS)
    allow(ROUTER, "topic", topics.SCHEMAS, "literal", Op.WRITE)
    # only routers write grant book snapshots, which sessions start from
    allow(ROUTER, "topic", topics.BOOK, "literal", Op.READ, Op.WRITE)
    # only routers write backfill progress (a department reads it, and asks for a resync)
    allow(ROUTER, "topic", topics.BACKFILL, "literal", Op.READ, Op.WRITE)
    allow(ROUTER, "topic", topics.RESYNC, "literal", Op.READ)
    allow(ROUTER, "topic", topics.DISPUTES, "literal", Op.READ)  # overdue disputes are audited
    # reads the log too: a command written without a client is audited unless it is already
    allow(ROUTER, "topic", topics.AUDIT, "literal", Op.READ, Op.WRITE)
    allow(ROUTER, "group", router_group, "literal", Op.READ)
    allow(ROUTER, "group", topics.COMMAND_AUDIT_GROUP, "literal", Op.READ)

    allow(ADMIN, "topic", topics.CATALOG, "literal", Op.READ, Op.WRITE, Op.CREATE)
    allow(ADMIN, "topic", topics.SCHEMAS, "literal", Op.READ, Op.WRITE, Op.CREATE)
    for t in (
        topics.GRANTS,
        topics.BOOK,
        topics.BACKFILL,
        topics.RESYNC,
        topics.DISPUTES,
        topics.AUDIT,
    ):
        allow(ADMIN, "topic", t, "literal", Op.CREATE, Op.DESCRIBE)
    allow(ADMIN, "topic", "gov.src.", "prefixed", Op.CREATE, Op.DESCRIBE)
    allow(ADMIN, "topic", topics.AUDIT, "literal", Op.WRITE)

    allow(AUDITOR, "topic", topics.AUDIT, "literal", Op.READ, Op.DESCRIBE_CONFIGS)
    allow(AUDITOR, "group", f"{AUDITOR}.", "prefixed", Op.READ)
    return sorted(set(acls))


def allowed(acls: list[Acl], principal: str, resource_type: str, name: str, op: Op) -> bool:
    """What a broker with these ACLs (and deny-by-default) would decide."""
    return any(a.matches(principal, resource_type, name, op) for a in acls)


def to_json(acls: list[Acl]) -> list[dict[str, Any]]:
    return [
        {**asdict(a), "operation": a.operation.value, "permission": "Allow", "host": "*"}
        for a in acls
    ]


def to_kafka_acls(acls: list[Acl], bootstrap: str = "$BOOTSTRAP") -> str:
    """Commands for Apache Kafka's ``kafka-acls.sh``, one binding per line."""
    lines = [
        "#!/bin/sh",
        "# Generated by 'exchange acls' from the catalog; run against a cluster with",
        "# authorizer.class.name set and allow.everyone.if.no.acl.found=false.",
        'BOOTSTRAP="${BOOTSTRAP:?set BOOTSTRAP to the cluster bootstrap servers}"',
    ]
    for a in acls:
        target = (
            f"--topic {shlex.quote(a.name)}"
            if a.resource_type == "topic"
            else f"--group {shlex.quote(a.name)}"
        )
        lines.append(
            f'kafka-acls.sh --bootstrap-server "{bootstrap}" --add '
            f"--allow-principal {shlex.quote(a.principal)} --operation {a.operation.value} "
            f"{target} --resource-pattern-type {a.pattern}"
        )
    return "\n".join(lines) + "\n"


def apply(acls: list[Acl], admin: Connection) -> int:
    """Create the ACLs on a real Kafka cluster through its admin API; returns how many.

    Uses kafka-python's admin client (aiokafka has no ACL API); ``admin`` must be a
    principal allowed to alter ACLs (the cluster's super user). Creating a binding
    that exists is a no-op, so applying again after a catalog change adds what is new.
    """
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourceType,
    )

    bindings = [
        ACL(
            principal=a.principal,
            host="*",
            operation=ACLOperation[a.operation.name],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType.TOPIC if a.resource_type == "topic" else ResourceType.GROUP,
                a.name,
                ACLResourcePatternType.PREFIXED
                if a.pattern == "prefixed"
                else ACLResourcePatternType.LITERAL,
            ),
        )
        for a in acls
    ]
    client = KafkaAdminClient(**admin.sync_client_options(), client_id="gov-exchange-acls")
    try:
        result = client.create_acls(bindings)
    finally:
        client.close()
    failed = result.get("failed", [])
    if failed:
        from exchange.errors import ExchangeError

        raise ExchangeError(f"{len(failed)} ACL(s) were refused by the cluster: {failed[:3]}")
    return len(bindings)


# --- Strimzi ------------------------------------------------------------------------------

STRIMZI_API = "kafka.strimzi.io/v1beta2"
STRIMZI_CLUSTER = "gov-exchange"


def strimzi_user_name(principal: str) -> str:
    """The Kafka user (and KafkaUser name) of a principal on Strimzi.

    Kubernetes names allow no ``_``, department ids no ``-``: a department
    ``civil_affairs`` logs in to a Strimzi cluster as ``civil-affairs``, and
    :func:`principal_of_user` maps it back.
    """
    return principal.removeprefix("User:").replace("_", "-")


def principal_of_user(user: str) -> str:
    """The bus principal a Kafka user name stands for (inverse of :func:`strimzi_user_name`)."""
    if user in (ROUTER, ADMIN, AUDITOR):
        return user
    return user.replace("-", "_")


def to_strimzi(acls: list[Acl], *, cluster: str = STRIMZI_CLUSTER) -> list[dict[str, Any]]:
    """One Strimzi ``KafkaUser`` per principal (SCRAM-SHA-512), holding exactly its ACLs."""
    by_principal: dict[str, dict[tuple[str, str, str], list[str]]] = {}
    for a in acls:
        resources = by_principal.setdefault(a.principal, {})
        resources.setdefault((a.resource_type, a.name, a.pattern), []).append(a.operation.value)
    users = []
    for principal, resources in by_principal.items():
        rules = [
            {
                "resource": {
                    "type": rtype,
                    "name": name,
                    "patternType": "prefix" if pattern == "prefixed" else "literal",
                },
                "operations": sorted(set(ops)),
                "host": "*",
            }
            for (rtype, name, pattern), ops in sorted(resources.items())
        ]
        users.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaUser",
                "metadata": {
                    "name": strimzi_user_name(principal),
                    "labels": {
                        "strimzi.io/cluster": cluster,
                        "app.kubernetes.io/part-of": "gov-exchange",
                    },
                },
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": rules},
                },
            }
        )
    return users


def from_strimzi(users: list[dict[str, Any]]) -> list[Acl]:
    """The ACLs ``KafkaUser`` resources grant, as bus principals (to compare with :func:`generate`)."""
    out: list[Acl] = []
    for user_doc in users:
        principal = user(principal_of_user(user_doc["metadata"]["name"]))
        for rule in user_doc["spec"]["authorization"]["acls"]:
            res = rule["resource"]
            pattern = "prefixed" if res.get("patternType") == "prefix" else "literal"
            out.extend(
                Acl(principal, res["type"], res["name"], pattern, Op(op))
                for op in rule["operations"]
            )
    return sorted(set(out))

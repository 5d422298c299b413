"""The development engines the CLI started, and how a command reaches them.

``exchange broker start`` starts the embedded broker (remembered in the state
directory by :mod:`exchange.dev.broker`) or an Apache Kafka cluster (its data
directory remembered in ``<state dir>/kafka.json``). A command given no
bootstrap servers uses whichever runs. On the Kafka cluster it acts as
``EXCHANGE_SASL_USERNAME`` (its password from the settings, else from the
cluster's ``credentials/<user>.password`` that ``exchange acls --apply`` or
``exchange demo --engine kafka`` wrote), or as the super user ``admin`` when
no user is set: the cluster is the operator's own, on loopback.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from exchange.bus.connection import Connection, Secret

if TYPE_CHECKING:
    from exchange.dev.kafka import KafkaCluster
    from exchange.settings import Settings

KAFKA_STATE = "kafka.json"
CREDENTIALS = "credentials"


def kafka_cluster(
    state_dir: Path, data_dir: Path | None = None, nodes: int | None = None
) -> KafkaCluster:
    """The cluster in ``data_dir``, else the one remembered, else in the state directory."""
    from exchange.dev.kafka import KafkaCluster

    if data_dir is None:
        data_dir = remembered_dir(state_dir) or state_dir / "kafka"
    return KafkaCluster(data_dir, nodes, die_with_parent=False)


def remembered_dir(state_dir: Path) -> Path | None:
    try:
        return Path(json.loads((state_dir / KAFKA_STATE).read_text())["data_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(state_dir: Path, cluster: KafkaCluster) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / KAFKA_STATE).write_text(json.dumps({"data_dir": str(cluster.dir)}) + "\n")


def running_kafka(state_dir: Path) -> KafkaCluster | None:
    """The Kafka cluster ``exchange broker start --engine kafka`` started, if it runs."""
    if remembered_dir(state_dir) is None:
        return None
    cluster = kafka_cluster(state_dir)
    return cluster if cluster.formatted and cluster.running() else None


def credentials_dir(cluster: KafkaCluster) -> Path:
    """Where the principals' password files of this cluster are kept."""
    return cluster.dir / CREDENTIALS


def super_user(cluster: KafkaCluster, settings: Settings | None = None) -> Connection:
    """The cluster's super user; topics get min(3, nodes) replicas (2 in sync from 3)."""
    from exchange.settings import Settings

    s = settings or Settings()
    policy = s.topic_policy()
    policy = dataclasses.replace(
        policy, replication_factor=max(policy.replication_factor, min(3, cluster.nodes))
    )
    return cluster.connection().with_topics(policy)


def connection_to(cluster: KafkaCluster, settings: Settings) -> Connection:
    """A command's connection to the CLI's cluster: as the settings' user, else the super user."""
    admin = super_user(cluster, settings)
    user = settings.sasl_username
    if not user or user == admin.username:
        return admin
    password = settings.password() or Secret.from_file(
        credentials_dir(cluster) / f"{user}.password"
    )
    return admin.as_user(user, password)

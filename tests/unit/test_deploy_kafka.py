"""deploy/kafka/: the KRaft config the clusters are made of, the ACLs and the topic settings.

The test lane's clusters are written from ``deploy/kafka/server.properties``
(exchange/dev/kafka.py), so that file is the tested configuration; this checks
that a node's whole file is it plus the node's own part, and that the
generated ACLs and the table of topic settings are what the code gives today.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_support import DEPLOY, ROOT
from typer.testing import CliRunner

from exchange.bus import topics
from exchange.bus.topic_config import TopicPolicy
from exchange.cli import app
from exchange.dev import kafka as dev_kafka

KAFKA = DEPLOY / "kafka"
#: the family column of topics.txt -> TopicPolicy.family
FAMILIES = {
    "control-history": "control",
    "control-keyed": "control",
    "audit": "audit",
    "sources": "source",
    "deliveries": "delivery",
    "dead-letters": "dead-letter",
}


def node_config(tmp_path: Path, nodes: int, node: int) -> dict[str, str]:
    cluster = dev_kafka.KafkaCluster(tmp_path, nodes)
    cluster.layout = {
        "cluster_id": "x",
        "kafka_version": "4.1.1",
        "client_ports": [9192 + 100 * i for i in range(nodes)],
        "controller_ports": [9193 + 100 * i for i in range(nodes)],
    }
    path = tmp_path / "server.properties"
    path.write_text(cluster._config(node, "secret-password"))
    return dev_kafka.read_properties(path)


def test_a_node_runs_the_shared_file_plus_its_own_part(tmp_path: Path) -> None:
    shared = dev_kafka.read_properties(dev_kafka.SERVER_PROPERTIES)
    config = node_config(tmp_path, 3, 2)
    assert {k: config[k] for k in shared} == shared
    assert config["node.id"] == "2"
    assert config["listeners"] == "CLIENT://127.0.0.1:9292,CONTROLLER://127.0.0.1:9293"
    assert config["controller.quorum.voters"] == (
        "1@127.0.0.1:9193,2@127.0.0.1:9293,3@127.0.0.1:9393"
    )
    assert config["min.insync.replicas"] == "2"
    assert config["default.replication.factor"] == "3"
    assert node_config(tmp_path, 1, 1)["min.insync.replicas"] == "1"


def test_the_shared_file_secures_the_cluster() -> None:
    shared = dev_kafka.read_properties(dev_kafka.SERVER_PROPERTIES)
    assert shared["super.users"] == f"User:{dev_kafka.SUPER_USER}"
    assert shared["allow.everyone.if.no.acl.found"] == "false"
    assert shared["auto.create.topics.enable"] == "false"
    assert shared["listener.name.client.sasl.enabled.mechanisms"] == dev_kafka.MECHANISM
    protocols = [p.split(":")[1] for p in shared["listener.security.protocol.map"].split(",")]
    assert all(p.startswith("SASL_") for p in protocols), protocols


def test_a_node_setting_in_the_shared_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "server.properties"
    bad.write_text(dev_kafka.SERVER_PROPERTIES.read_text() + "node.id=7\n")
    monkeypatch.setattr(dev_kafka, "SERVER_PROPERTIES", bad)
    with pytest.raises(dev_kafka.KafkaEngineError, match=r"sets node.id, which each node sets"):
        node_config(tmp_path, 3, 1)
    bad.write_text("just words\n")
    with pytest.raises(dev_kafka.KafkaEngineError, match=r"line 1: not a key=value line"):
        dev_kafka.read_properties(bad)


def test_the_acls_script_is_what_exchange_acls_generates_from_the_catalog() -> None:
    result = CliRunner().invoke(app, ["acls", "--catalog", str(ROOT / "schemas")])
    assert result.exit_code == 0, result.output
    assert (KAFKA / "acls.sh").read_text() == result.output, (
        "deploy/kafka/acls.sh is stale: exchange acls --catalog schemas > deploy/kafka/acls.sh"
    )


def test_the_topic_table_is_what_the_bus_creates_topics_with() -> None:
    policy = TopicPolicy(replication_factor=3)
    rows = [
        line.split()
        for line in (KAFKA / "topics.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(rows) == len(topics.CONTROL_TOPICS) + 3  # and sources, deliveries, dead letters
    families = set()
    for topic, family, *settings in rows:
        example = (
            topic.replace("<provider>", "health")
            .replace("<consumer>", "police")
            .replace("<resource>", "births")
        )
        families.add(policy.family(example))
        assert FAMILIES[family] == policy.family(example), topic
        assert dict(s.split("=", 1) for s in settings) == policy.configs(example), topic
    assert families == {"control", "audit", "source", "delivery", "dead-letter"}

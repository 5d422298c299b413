"""deploy/k8s/: valid for Kubernetes and Strimzi, and cross-checked with the catalog and the code.

Validation is ``python -m exchange.dev.k8s_check deploy/k8s/*.yaml`` (the
command deploy/README.md gives): Kubernetes' own schemas for built-in kinds,
the CRDs Strimzi's generator writes from ``io.strimzi:api`` for Strimzi's. The
KafkaUsers must be what ``exchange acls --format strimzi`` generates: every
department has its user and no user has an ACL ``exchange acls`` does not give.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from deploy_support import DEPLOY, ROOT
from typer.testing import CliRunner

from exchange.admin import acls
from exchange.bus import topics
from exchange.bus.topic_config import TopicPolicy
from exchange.catalog.model import Catalog
from exchange.cli import app
from exchange.dev import k8s_check
from exchange.dev.kafka import SERVER_PROPERTIES, read_properties
from exchange.settings import Settings

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))


def _cli_env() -> set[str]:
    """EXCHANGE_ variables the CLI's options read (``envvar=``), besides the Settings fields."""
    import typer.main

    found: set[str] = set()

    def walk(command: Any, ctx: typer.Context) -> None:
        for param in command.params:
            names = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            found.update(n for n in names if isinstance(n, str) and n.startswith("EXCHANGE_"))
        if hasattr(command, "list_commands"):  # a group; lazily loaded subcommands too
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, typer.Context(sub, parent=ctx, info_name=name))

    root = typer.main.get_command(app)
    walk(root, typer.Context(root, info_name="exchange"))
    return found


CLI_ENV = _cli_env()


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_every_manifest_is_valid_for_kubernetes_and_strimzi() -> None:
    problems = k8s_check.check_files(MANIFESTS)
    assert not problems, "\n".join(map(str, problems))
    kinds = {d["kind"] for m in MANIFESTS for d in yaml.safe_load_all(m.read_text()) if d}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Deployment"} <= kinds
    assert {"PodDisruptionBudget", "NetworkPolicy", "Service"} <= kinds


def test_the_check_catches_what_the_api_server_or_strimzi_would_refuse(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (K8S / "kafka.yaml").read_text().replace("roles:", "rolez:")
    text += "---\n" + (K8S / "router.yaml").read_text().replace("minAvailable", "minAvailible")
    text += "---\n" + (K8S / "users.yaml").read_text().replace("name: police", "name: po_lice")
    bad.write_text(text)
    found = [str(p) for p in k8s_check.check_files([bad])]
    assert any("KafkaNodePool/dual-role) at spec: 'roles' is a required" in p for p in found)
    assert any("PodDisruptionBudget" in p and "'minAvailible' was unexpected" in p for p in found)
    assert any("KafkaUser/po_lice) at metadata.name" in p for p in found)


def test_the_users_are_what_exchange_acls_generates(sample_catalog: Catalog) -> None:
    result = CliRunner().invoke(
        app, ["acls", "--catalog", str(ROOT / "schemas"), "--format", "strimzi"]
    )
    assert result.exit_code == 0, result.output
    assert (K8S / "users.yaml").read_text() == result.output, (
        "deploy/k8s/users.yaml is stale: "
        "exchange acls --catalog schemas --format strimzi > deploy/k8s/users.yaml"
    )
    users = docs("users.yaml")
    names = {u["metadata"]["name"] for u in users}
    for dept in sample_catalog.departments:
        assert acls.strimzi_user_name(dept) in names, f"department {dept} has no KafkaUser"
    assert {"gov-router", "catalog-admin", "auditor"} <= names
    # no user allowed more (or less) than exchange acls says
    assert acls.from_strimzi(users) == acls.generate(sample_catalog)


def test_strimzi_user_names_map_back_to_departments() -> None:
    assert acls.strimzi_user_name("User:civil_affairs") == "civil-affairs"
    assert acls.principal_of_user("civil-affairs") == "civil_affairs"
    for own in (acls.ROUTER, acls.ADMIN, acls.AUDITOR):
        assert acls.principal_of_user(acls.strimzi_user_name(own)) == own


def test_the_topics_have_the_settings_the_bus_creates_them_with() -> None:
    policy = TopicPolicy(replication_factor=3)
    found = {d["spec"]["topicName"]: d["spec"] for d in docs("topics.yaml")}
    assert set(found) == set(topics.CONTROL_TOPICS)
    for topic, spec in found.items():
        assert spec["replicas"] == 3
        assert spec["partitions"] == 1
        assert {k: str(v) for k, v in spec["config"].items()} == policy.configs(topic), topic


def test_the_cluster_agrees_with_deploy_kafka_server_properties() -> None:
    pool, kafka = docs("kafka.yaml")
    shared = read_properties(SERVER_PROPERTIES)
    config = {k: str(v).lower() for k, v in kafka["spec"]["kafka"]["config"].items()}
    for key, value in config.items():
        if key in shared:
            assert shared[key].lower() == value, key
    assert config["auto.create.topics.enable"] == "false"
    assert config["allow.everyone.if.no.acl.found"] == "false"
    assert int(config["default.replication.factor"]) == pool["spec"]["replicas"] == 3
    assert config["min.insync.replicas"] == "2"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}


WORKLOADS = ("Deployment", "StatefulSet")
#: every process of the bus on Kubernetes; the archiver and connectors run beside it
PROCESSES = ("router", "registry", "gateway", "console")


def everything() -> list[dict[str, Any]]:
    return [d for m in MANIFESTS for d in yaml.safe_load_all(m.read_text()) if d]


def workload(name: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in everything()
        if d["kind"] in WORKLOADS and d["metadata"]["name"] == f"gov-exchange-{name}"
    ]
    return found


def container_env(doc: dict[str, Any]) -> dict[str, str]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_each_pdb_and_service_selects_its_deployment() -> None:
    deployments = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in everything()
        if d["kind"] in WORKLOADS
    }
    assert {f"gov-exchange-{p}" for p in PROCESSES} <= set(deployments)
    pdbs = {d["metadata"]["name"] for d in everything() if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == set(deployments), "every workload has its PodDisruptionBudget"
    for d in everything():
        if d["kind"] not in ("PodDisruptionBudget", "Service"):
            continue
        selector = d["spec"]["selector"]
        wanted = selector.get("matchLabels", selector)
        assert deployments[d["metadata"]["name"]].items() >= wanted.items(), d["metadata"]


@pytest.mark.parametrize(
    "path",
    [*MANIFESTS, *sorted((DEPLOY / "systemd").glob("*"))],
    ids=lambda p: p.name,
)
def test_every_exchange_variable_is_a_setting_the_code_reads(path: Path) -> None:
    known = {f"EXCHANGE_{name.upper()}" for name in Settings.model_fields} | CLI_ENV
    used = set(re.findall(r"\bEXCHANGE_[A-Z_]+\b", path.read_text()))
    assert used <= known, f"{path.name}: {sorted(used - known)} are read by nothing"


def test_every_process_is_let_in_by_prometheus_and_out_only_to_kafka() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in docs("network-policies.yaml")}

    def selected(spec: dict[str, Any]) -> set[str]:
        selector = spec["podSelector"]
        names = set(selector.get("matchLabels", {}).values())
        for e in selector.get("matchExpressions", []):
            names.update(e["values"])
        return names

    ports = {p["port"] for p in policies["allow-prometheus-scrape"]["ingress"][0]["ports"]}
    for name in PROCESSES:
        pod = f"gov-exchange-{name}"
        assert pod in selected(policies["allow-prometheus-scrape"]), pod
        assert pod in selected(policies["bus-egress"]), pod
        annotations = workload(name)["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in ports, pod
    assert "gov-exchange-console" in selected(policies["allow-console-clients"])
    assert "gov-exchange-gateway" in selected(policies["allow-gateway-clients"])


def test_every_process_signs_its_audit_chain_heads_with_a_key_from_a_secret() -> None:
    for name in PROCESSES:
        doc = workload(name)
        env = container_env(doc)
        assert env["EXCHANGE_AUDIT_SERVICE"] == f"gov-{name}", name
        key = Path(env["EXCHANGE_AUDIT_KEY_FILE"])
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
        secret = volumes[mounts[str(key.parent)]]["secret"]
        assert secret["secretName"] == f"gov-exchange-{name}-audit-key", name
        # the process runs as 10001: a secret file it can read by its group
        assert doc["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001, name


def test_the_gateway_keeps_its_store_on_a_volume_of_each_replica() -> None:
    doc = workload("gateway")
    assert doc["kind"] == "StatefulSet"
    store = Path(container_env(doc)["EXCHANGE_GATEWAY_STORE"])
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in doc["spec"]["volumeClaimTemplates"]}
    assert mounts[str(store.parent)] in claims


def test_the_console_has_the_password_of_every_department_and_the_auditor(
    sample_catalog: Catalog,
) -> None:
    doc = workload("console")
    env = container_env(doc)
    assert env["EXCHANGE_CONSOLE_STRIMZI_USERS"] == "true"
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    sources = volumes[mounts[env["EXCHANGE_CONSOLE_CREDENTIALS_DIR"]]]["projected"]["sources"]
    found = {}
    for source in sources:
        (item,) = source["secret"]["items"]
        assert item["key"] == "password"
        found[item["path"]] = source["secret"]["name"]
    # each file named as the console looks it up, from the Secret Strimzi keeps for the user
    wanted = {f"{p}.password": acls.strimzi_user_name(p) for p in sample_catalog.departments}
    wanted["auditor.password"] = acls.AUDITOR
    assert found == wanted
    users = {u["metadata"]["name"] for u in docs("users.yaml")}
    assert set(found.values()) <= users

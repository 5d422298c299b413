"""A real Prometheus, configured from deploy/prometheus/, sees a burst of dead letters alert.

Prometheus (Debian's ``prometheus`` package) is started from
``deploy/prometheus/prometheus.yml`` and its rule files as they are, with two
changes only a test needs: 1 s scrape and evaluation intervals, and the
router job's target set to the metrics endpoint of a router this test runs
(``serve_metrics``, what ``exchange router --metrics-port`` calls). The router
scrapes healthy and no alert is firing; undecodable records are then written
to a source topic, and ``GovExchangeDeadLetters`` must fire for that resource.
The router runs without a service identity, so its audit entries stay unsigned:
the expression of ``GovExchangeAuditTailUnsigned`` (without its one-minute
threshold, which promtool's unit test covers) must see its chain waiting.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from routing_support import running_router, wait_for

from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.cli.serving import serve_metrics
from exchange.dev.broker import free_port
from exchange.metrics import RouterMetrics

pytestmark = pytest.mark.integration

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
BMC = "birth_medical_certificate"
BURST = 5


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: tests/services/require-packages.sh installs it")
    return found


def scrape_config(metrics_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with 1 s intervals, scraping only our router."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(PROMETHEUS / f) for f in config["rule_files"]]
    jobs = [j for j in config["scrape_configs"] if j["job_name"] == "gov-exchange-router"]
    jobs[0]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    config["scrape_configs"] = jobs
    return config


@pytest.fixture
def router_metrics() -> Iterator[tuple[RouterMetrics, int]]:
    metrics = RouterMetrics()
    port = free_port()
    server = serve_metrics(metrics.registry, port, "127.0.0.1")
    try:
        yield metrics, port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prometheus(tmp_path: Path, router_metrics: tuple[RouterMetrics, int]) -> Iterator[str]:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(router_metrics[1])))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        if proc.returncode not in (0, -15):
            print((tmp_path / "prometheus.log").read_text()[-3000:])


def api(base: str, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"{base}/api/v1/{path}", timeout=2) as answer:
            return json.load(answer)["data"]
    except OSError:
        return None  # not listening yet


def router_target_up(base: str) -> bool:
    data = api(base, "targets")
    active = data["activeTargets"] if data else []
    return any(t["labels"]["job"] == "gov-exchange-router" and t["health"] == "up" for t in active)


def alert_expression(name: str) -> tuple[str, float]:
    """An alert's expression of deploy/prometheus/rules/alerts.yml, split at its threshold."""
    doc = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == name]
    expr, threshold = rule["expr"].rsplit(">", 1)
    return expr.strip(), float(threshold)


def query(base: str, expr: str) -> list[dict[str, Any]]:
    data = api(base, f"query?query={urllib.parse.quote(expr)}")
    return (data or {}).get("result", [])


def dead_letter_alerts(base: str) -> list[dict[str, Any]]:
    data = api(base, "alerts")
    return [
        a
        for a in (data or {}).get("alerts", [])
        if a["labels"]["alertname"] == "GovExchangeDeadLetters"
    ]


async def test_a_burst_of_dead_letters_fires_the_alert(
    bus: Connection,
    loaded_catalog: Catalog,
    router_metrics: tuple[RouterMetrics, int],
    prometheus: str,
) -> None:
    metrics, _port = router_metrics
    source = topics.source("health", BMC)
    await kafka.ensure_topics(bus, [source])
    async with running_router(bus, metrics=metrics) as run:
        await wait_for(lambda: router_target_up(prometheus), within=30, what="the router scraped")
        # a scrape and a rule evaluation later, still nothing: the alert needs dead letters
        await asyncio.sleep(2.5)
        assert dead_letter_alerts(prometheus) == []

        schema_id = loaded_catalog.resources[BMC].schema_id
        async with AIOKafkaProducer(**bus.client_options(), acks="all") as producer:
            for i in range(BURST):
                value = wire.frame(schema_id, b"\xff" * 64)  # not Avro of the schema
                await producer.send_and_wait(source, value=value, key=f"bad-{i}".encode())

        def dead_lettered() -> bool:
            run.check_alive()
            got = metrics.registry.get_sample_value(
                "gov_exchange_records_dead_lettered_total", {"resource": BMC}
            )
            return got == BURST

        await wait_for(dead_lettered, within=30, what=f"{BURST} dead letters counted")

        def firing() -> bool:
            return any(a["state"] == "firing" for a in dead_letter_alerts(prometheus))

        await wait_for(firing, within=30, what="GovExchangeDeadLetters firing", interval=0.25)
        (alert,) = dead_letter_alerts(prometheus)
        assert alert["labels"]["resource"] == BMC
        assert alert["labels"]["severity"] == "warning"
        assert f"gov.dlq.{BMC}" in alert["annotations"]["summary"]

        # no service identity: the router's audit chain waits for a head that never comes
        unsigned, threshold = alert_expression("GovExchangeAuditTailUnsigned")
        assert threshold == 60

        def waiting() -> list[dict[str, Any]]:
            found = query(prometheus, unsigned)
            return [r for r in found if float(r["value"][1]) > 0]

        await wait_for(waiting, within=15, what="the unsigned audit tail seen", interval=0.25)
        (series,) = waiting()
        assert series["metric"]["role"] == "router"
        assert series["metric"]["job"] == "gov-exchange-router"
        entries = metrics.registry.get_sample_value(
            "gov_exchange_audit_unsigned_entries", {"role": "router"}
        )
        assert entries is not None
        assert entries >= 1

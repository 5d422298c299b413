"""Helpers for the tests of deploy/: the real tools, and the metrics the code exports.

Not a test module.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from connectors.base import ConnectorMetrics
from exchange.gateway.service import GatewayMetrics
from exchange.http.access_audit import AccessAuditMetrics
from exchange.http.metrics import HttpMetrics
from exchange.metrics import AuditMetrics, RouterMetrics
from exchange.registry.service import RegistryMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
#: series Prometheus makes itself for every target
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
}
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME = re.compile(r"(?<![\w:])([a-zA-Z_][a-zA-Z0-9_]*(?::[a-zA-Z0-9_]+)+|gov_exchange_\w+|up)\b")


def tool(name: str) -> str:
    """The path of a Debian tool the suite installs (tests/services/require-packages.sh)."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run tests/services/require-packages.sh")
    return found


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


def exported_metrics() -> set[str]:
    """Every series name the bus's processes can expose (router, HTTP services, registry,
    gateway, connectors, archiver), each process's on a registry of its own as it runs."""
    router, registry, gateway, connector, archiver = (CollectorRegistry() for _ in range(5))
    RouterMetrics(router)
    HttpMetrics(registry)
    RegistryMetrics(registry)
    AccessAuditMetrics(registry)
    HttpMetrics(gateway)
    GatewayMetrics(gateway)
    ConnectorMetrics(connector)
    AuditMetrics(archiver)
    names = set()
    for r in (router, registry, gateway, connector, archiver):
        for family in r.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def recorded_metrics() -> dict[str, str]:
    """The recording rules of deploy/prometheus: name -> expression."""
    doc = yaml.safe_load((PROMETHEUS / "rules" / "recording.yml").read_text())
    return {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (bus metrics, recorded ones, ``up``)."""
    return set(_NAME.findall(_QUOTED.sub('""', expr)))

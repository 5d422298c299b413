"""deploy/grafana/gov-exchange.json: every query parses (promtool) and names exported metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from deploy_support import (
    DEPLOY,
    PROMETHEUS_OWN,
    exported_metrics,
    metric_names,
    recorded_metrics,
    run,
    tool,
)

DASHBOARD = DEPLOY / "grafana" / "gov-exchange.json"
#: Grafana's variables, replaced by what they stand for at query time
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$resource": ".*"}


def queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every panel's query."""
    doc = json.loads(DASHBOARD.read_text())
    found = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))

    walk(doc["panels"])
    return found


def expand(expr: str) -> str:
    out = expr
    for name, value in VARIABLES.items():
        out = out.replace(name, value)
    left = re.findall(r"\$\w+", out)
    assert not left, f"unknown Grafana variable(s) {left} in {expr!r}"
    return out


def test_every_query_parses(tmp_path: Path) -> None:
    exprs = queries()
    assert len(exprs) >= 15
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": expand(e)}
        for i, (_, e) in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run([tool("promtool"), "check", "rules", str(path)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_query_that_does_not_parse_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    rule = {"record": "x:y:z", "expr": "sum by (resource) (rate(gov_exchange_records_in_total[1m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [rule]}]}))
    assert run([tool("promtool"), "check", "rules", str(path)]).returncode != 0


def test_every_query_names_only_metrics_the_code_exports() -> None:
    known = exported_metrics() | PROMETHEUS_OWN | set(recorded_metrics())
    used: set[str] = set()
    for title, expr in queries():
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        assert names <= known, f"panel {title!r} names {sorted(names - known)}, not exported"
        used |= names
    # what the issue asks the dashboard to show
    for wanted in (
        "gov_exchange_records_in_total",
        "gov_exchange_records_delivered_total",
        "topic:gov_exchange_consumer_lag:max",
        "gov_exchange_routing_batch_seconds_bucket",
        "gov_exchange_records_dead_lettered_total",
        "gov_exchange_active_grants",
        "gov_exchange_audit_entries_written_total",
        "gov_exchange_audit_unsigned_seconds",
        "service:gov_exchange_http_requests:rate5m",
    ):
        assert wanted in used, f"the dashboard shows no {wanted}"

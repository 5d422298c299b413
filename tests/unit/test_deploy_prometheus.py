"""deploy/prometheus/ checked by Prometheus' own tools, and against the metrics the code exports.

``promtool check config`` and ``check rules`` must pass; ``promtool test rules``
runs the unit tests of every alert, and every alert must have one and a
runbook entry in deploy/README.md; every rule names only series the code
exports (a renamed metric would leave an alert that can never fire).
"""

from __future__ import annotations

import yaml
from deploy_support import (
    DEPLOY,
    PROMETHEUS,
    PROMETHEUS_OWN,
    exported_metrics,
    metric_names,
    recorded_metrics,
    run,
    tool,
)

TEST_FILES = ("tests/alerts_test.yml", "tests/alerts_daily_test.yml")


def rules() -> list[dict[str, str]]:
    found = []
    for name in ("recording.yml", "alerts.yml"):
        doc = yaml.safe_load((PROMETHEUS / "rules" / name).read_text())
        found.extend(r for g in doc["groups"] for r in g["rules"])
    return found


def alert_names() -> list[str]:
    return [r["alert"] for r in rules() if "alert" in r]


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert config.returncode == 0, config.stdout + config.stderr
    checked = run(
        [tool("promtool"), "check", "rules", "rules/recording.yml", "rules/alerts.yml"],
        cwd=PROMETHEUS,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_passes_its_unit_tests() -> None:
    done = run([tool("promtool"), "test", "rules", *TEST_FILES], cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_has_a_unit_test_that_sees_it_fire_and_a_runbook_entry() -> None:
    docs = [yaml.safe_load((PROMETHEUS / name).read_text()) for name in TEST_FILES]
    firing = {
        case["alertname"]
        for doc in docs
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    runbook = (DEPLOY / "README.md").read_text()
    for alert in alert_names():
        assert alert in firing, f"alert {alert} has no test in alerts_test.yml that sees it fire"
        assert f"### {alert}" in runbook, f"deploy/README.md has no '### {alert}' section"
        anchor = f"deploy/README.md#{alert.lower()}"
        rule = next(r for r in rules() if r.get("alert") == alert)
        assert rule["annotations"]["runbook"] == anchor


def test_every_rule_names_only_metrics_the_code_exports() -> None:
    known = exported_metrics() | PROMETHEUS_OWN | set(recorded_metrics())
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, f"found no metric in {rule['expr']!r}"
        unknown = names - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"


def test_the_metric_name_check_would_catch_a_renamed_metric() -> None:
    known = exported_metrics()
    assert "gov_exchange_records_dead_lettered_total" in known
    assert "gov_exchange_routing_batch_seconds_bucket" in known
    assert "gov_exchange_records_dead_letters_total" not in known
    assert metric_names('sum by (resource) (rate(x_total{job="gov_exchange_y"}[5m]))') == set()

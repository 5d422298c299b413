"""The configuration table of topic families, and the check of a topic's reported settings."""

from __future__ import annotations

import pytest

from exchange.bus import topics
from exchange.bus.topic_config import DAY_MS, TopicPolicy, problems_of
from exchange.settings import Settings

SRC = topics.source("tax", "filings")
DLV = topics.delivery("police", "filings")
DLQ = topics.dead_letter("filings")


def test_control_history_topics_are_kept_forever() -> None:
    for topic in (topics.CATALOG, topics.GRANTS):
        assert TopicPolicy().configs(topic) == {
            "cleanup.policy": "delete",
            "retention.ms": "-1",
            "retention.bytes": "-1",
        }


def test_keyed_control_topics_are_compacted() -> None:
    for topic in (topics.SCHEMAS, topics.BOOK):
        assert TopicPolicy().configs(topic) == {"cleanup.policy": "compact"}


def test_audit_is_kept_forever_unless_a_period_is_set() -> None:
    assert TopicPolicy().configs(topics.AUDIT)["retention.ms"] == "-1"
    seven_years = 7 * 365 * DAY_MS
    configs = TopicPolicy(audit_retention_ms=seven_years).configs(topics.AUDIT)
    assert configs["retention.ms"] == str(seven_years)
    assert "retention.bytes" not in configs


@pytest.mark.parametrize(("topic", "days"), [(DLV, 7), (DLQ, 30)], ids=["delivery", "dead-letter"])
def test_data_topics_have_their_retention(topic: str, days: int) -> None:
    assert TopicPolicy().configs(topic)["retention.ms"] == str(days * DAY_MS)


def test_sources_are_compacted_unless_the_catalog_declares_a_retention() -> None:
    """The latest record of every key stays (backfills, 全量), and a tombstone a day."""
    configs = TopicPolicy().configs(SRC)
    assert configs["cleanup.policy"] == "compact"
    assert configs["delete.retention.ms"] == str(DAY_MS)
    assert "retention.ms" not in configs
    declared = TopicPolicy().with_sources({SRC: 30 * DAY_MS}).configs(SRC)
    assert declared["cleanup.policy"] == "delete"
    assert declared["retention.ms"] == str(30 * DAY_MS)
    off = TopicPolicy(source_compaction=False).configs(SRC)
    assert off["cleanup.policy"] == "delete"
    assert off["retention.ms"] == str(7 * DAY_MS)


def test_replication_sets_min_insync_replicas_from_two() -> None:
    assert "min.insync.replicas" not in TopicPolicy().configs(topics.CATALOG)
    assert TopicPolicy(replication_factor=2).configs(SRC)["min.insync.replicas"] == "2"
    assert TopicPolicy(replication_factor=3).configs(topics.SCHEMAS)["min.insync.replicas"] == "2"


def test_unknown_topics_get_no_retention() -> None:
    assert TopicPolicy(replication_factor=3).configs("outbox.big") == {"min.insync.replicas": "2"}


def test_policy_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("EXCHANGE_PARTITIONS", "6")
    monkeypatch.setenv("EXCHANGE_AUDIT_RETENTION_MS", str(3650 * DAY_MS))
    policy = Settings().topic_policy()
    assert (policy.replication_factor, policy.partitions) == (3, 6)
    assert policy.audit_retention_ms == 3650 * DAY_MS


def test_the_configs_created_pass_the_check() -> None:
    for rf in (1, 3):
        policy = TopicPolicy(replication_factor=rf, audit_retention_ms=5 * 365 * DAY_MS)
        for topic in topics.CONTROL_TOPICS:
            assert problems_of(topic, policy.configs(topic), rf, policy) == []


def test_a_week_of_retention_on_grants_is_refused_with_the_fix() -> None:
    entries = {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}
    [problem] = problems_of(topics.GRANTS, entries, 1, TopicPolicy())
    text = str(problem)
    assert "gov.ctl.grants" in text
    assert "retention.ms is 604800000, must be -1 (forever)" in text
    assert "--entity-name gov.ctl.grants --add-config retention.ms=-1" in text


def test_size_retention_without_compaction_is_refused() -> None:
    [problem] = problems_of(topics.CATALOG, {"retention.bytes": "1073741824"}, None, TopicPolicy())
    assert (problem.setting, problem.found) == ("retention.bytes", "1073741824")


def test_compaction_makes_finite_retention_harmless_on_keyed_topics() -> None:
    entries = {"cleanup.policy": "compact", "retention.ms": "604800000"}
    assert problems_of(topics.SCHEMAS, entries, 1, TopicPolicy()) == []
    entries["cleanup.policy"] = "compact,delete"
    assert [p.setting for p in problems_of(topics.SCHEMAS, entries, 1, TopicPolicy())] == [
        "retention.ms"
    ]


def test_audit_retention_at_least_the_legal_period_is_accepted() -> None:
    policy = TopicPolicy(audit_retention_ms=365 * DAY_MS)
    assert problems_of(topics.AUDIT, {"retention.ms": str(400 * DAY_MS)}, 1, policy) == []
    [problem] = problems_of(topics.AUDIT, {"retention.ms": str(7 * DAY_MS)}, 1, policy)
    assert problem.wanted == f"-1 (forever) or at least {365 * DAY_MS}"


def test_fewer_replicas_than_configured_are_refused() -> None:
    policy = TopicPolicy(replication_factor=3)
    [problem] = problems_of(topics.CATALOG, policy.configs(topics.CATALOG), 1, policy)
    assert (problem.setting, problem.found) == ("replication factor", "1")
    assert "kafka-reassign-partitions" in problem.fix


def test_settings_not_reported_raise_no_alarm() -> None:
    """The embedded broker reports only the settings a topic was created with."""
    assert problems_of(topics.GRANTS, {}, None, TopicPolicy()) == []


def test_the_catalog_sets_a_source_topics_retention() -> None:
    policy = TopicPolicy().with_sources(
        {"gov.src.health.birth_medical_certificate": 30 * DAY_MS, "gov.src.police.people": -1}
    )
    assert policy.configs("gov.src.health.birth_medical_certificate")["retention.ms"] == str(
        30 * DAY_MS
    )
    forever = policy.configs("gov.src.police.people")
    assert (forever["retention.ms"], forever["retention.bytes"]) == ("-1", "-1")
    assert policy.configs("gov.src.market.licences")["cleanup.policy"] == "compact"

"""Prometheus metrics of the router and of the access log, in containers.

The container takes a ``CollectorRegistry`` so tests use a fresh one, and
keeps label sets bounded: resource and consumer department, never a record id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exchange import workdays


class AuditMetrics:
    """Metrics of the access log; part of :class:`RouterMetrics`, usable on their own."""

    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "gov_exchange"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.entries_written = Counter(
            f"{prefix}_audit_entries_written",
            "Audit entries written to gov.audit and acknowledged, per action",
            ["action"],
            registry=r,
        )
        self.verification_failures = Counter(
            f"{prefix}_audit_verification_failures",
            "Audit entries found modified, inserted, deleted, reordered or unreadable, per kind",
            ["kind"],
            registry=r,
        )
        self.oldest_unanswered_application_age = Gauge(
            f"{prefix}_audit_oldest_unanswered_application_age_seconds",
            "Age of the oldest application still waiting for the provider's answer "
            "(0 when none waits); the rule is an answer within 10 working days",
            registry=r,
        )
        self.applications_overdue = Gauge(
            f"{prefix}_applications_overdue",
            "Applications whose stage under way (review, answer, negotiation, decision) is "
            "past its time limit in working days (workflow.yaml), per stage",
            ["stage"],
            registry=r,
        )
        self.application_reminders = Counter(
            f"{prefix}_application_reminders",
            "Reminders (催办) audited: a stage of an application at its last working day, "
            "per stage",
            ["stage"],
            registry=r,
        )


class CalendarMetrics:
    """What the official holiday calendar lacked (see :mod:`exchange.workdays`).

    ``gov_exchange_calendar_years_missing`` is read at each scrape: the
    number of years this process counted a deadline into with neither the
    chinesecalendar package nor a calendar file of the catalog in force
    (counted Monday to Friday meanwhile). It falls back to 0 once a catalog
    with the year's file is in force. Alert on it above 0.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "gov_exchange"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.years_missing = Gauge(
            f"{prefix}_calendar_years_missing",
            "Years a deadline reached into with no official holiday calendar (neither the "
            "chinesecalendar package nor calendar/<year>.yaml of the catalog in force); "
            "those days were counted Monday to Friday. Add the year's file and load the catalog.",
            registry=self.registry,
        )
        self.years_missing.set_function(lambda: len(workdays.missing_years()))


class RouterMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "gov_exchange"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            f"{prefix}_records_in", "Source records read, per resource", ["resource"], registry=r
        )
        self.delivered = Counter(
            f"{prefix}_records_delivered",
            "Records delivered to a consumer's view",
            ["resource", "consumer"],
            registry=r,
        )
        self.filtered = Counter(
            f"{prefix}_records_filtered",
            "Records withheld from a consumer by its grant's row filter",
            ["resource", "consumer"],
            registry=r,
        )
        self.backfilled = Counter(
            f"{prefix}_records_backfilled",
            "Records delivered by a backfill (全量: the current state of a consumer's view)",
            ["resource", "consumer"],
            registry=r,
        )
        self.backfills = Gauge(
            f"{prefix}_backfills_running",
            "Backfills this router is running (views times source partitions)",
            registry=r,
        )
        self.dead_letters = Counter(
            f"{prefix}_records_dead_lettered",
            "Source records sent to the dead-letter topic",
            ["resource"],
            registry=r,
        )
        self.batch_latency = Histogram(
            f"{prefix}_routing_batch_seconds",
            "Time from fetching a batch of source records to every delivery being acknowledged",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.lag = Gauge(
            f"{prefix}_consumer_lag",
            "Source records not yet routed (high watermark minus position, per source topic). "
            "Right on real Kafka; the embedded broker may under-report it.",
            ["topic"],
            registry=r,
        )
        self.active_grants = Gauge(
            f"{prefix}_active_grants", "Grants in force (有条件共享 approvals)", registry=r
        )
        self.views = Gauge(f"{prefix}_views", "Compiled consumer views", registry=r)
        self.policy_reloads = Counter(
            f"{prefix}_policy_reloads",
            "Times the views were recompiled after a catalog or grant change or an expiry",
            registry=r,
        )
        self.policy_reload_seconds = Histogram(
            f"{prefix}_policy_reload_seconds",
            "Time to recompile every view",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.broker_wait = Gauge(
            f"{prefix}_broker_wait_seconds",
            "How long the router has been waiting for the broker: the longer of the time "
            "since its last fetch answer and the age of the oldest routed batch not yet "
            "acknowledged and committed (near 0 when all is well)",
            registry=r,
        )
        self.broker_stalls = Counter(
            f"{prefix}_broker_stalls",
            "Times the router waited for the broker longer than the stall threshold (5 s)",
            registry=r,
        )
        self.uncommitted_batches = Counter(
            f"{prefix}_uncommitted_batches",
            "Routed batches whose offsets could not be committed because the group "
            "rebalanced; their records are routed again (duplicates, never losses)",
            registry=r,
        )
        self.control_resets = Counter(
            f"{prefix}_control_reset",
            "Times the control topics went backwards under the router (recreated, truncated "
            "or deleted), per topic: it paused routing and rebuilt its state from the topics",
            ["topic"],
            registry=r,
        )
        self.routing_paused = Gauge(
            f"{prefix}_routing_paused",
            "1 while the router routes nothing (no delivery, no commit) because its control "
            "state was reset and is being rebuilt from the topics, else 0",
            registry=r,
        )
        self.audit = AuditMetrics(r, prefix)
        self.calendar = CalendarMetrics(r, prefix)

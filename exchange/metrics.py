"""Prometheus metrics of the router and of the access log, in containers.

The container takes a ``CollectorRegistry`` so tests use a fresh one, and
keeps label sets bounded: resource and consumer department, never a record id.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exchange import workdays


class SignedChain(Protocol):
    """What :class:`AuditHeadMetrics` reads of an audit writer (see ``AuditWriter``)."""

    role: str

    @property
    def unsigned(self) -> int: ...

    def unsigned_seconds(self) -> float: ...


class AuditHeadMetrics:
    """How far this process's audit chains run past their last signed head (签名链头).

    A writer with a service identity signs its chain's head every few seconds
    (:mod:`exchange.audit.heads`), so these stay near 0; they grow when no
    head is signed: no ``EXCHANGE_AUDIT_SERVICE`` set, or signing failing.
    Entries no head covers are what ``exchange audit verify`` reports as an
    unsigned tail, or as a forged chain if the writer never signs. Read at
    each scrape, per writer role (router, gateway, registry; the console's desks
    by department): the sum of
    the unsigned entries of the role's chains, the oldest one's wait.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "gov_exchange"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.unsigned_entries = Gauge(
            f"{prefix}_audit_unsigned_entries",
            "Audit entries this process wrote that no signed chain head covers yet, per "
            "writer role (a few while running; 'exchange audit verify' calls them the "
            "unsigned tail)",
            ["role"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.unsigned_seconds = Gauge(
            f"{prefix}_audit_unsigned_seconds",
            "How long the oldest audit entry no signed chain head covers has waited for one, "
            "per writer role (0: every entry is signed; heads come every "
            "EXCHANGE_AUDIT_SIGN_EVERY_S, 5 s by default)",
            ["role"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._chains: dict[str, list[SignedChain]] = {}

    def watch(self, chain: SignedChain) -> None:
        """Export ``chain``'s unsigned tail under its role until :meth:`forget`."""
        chains = self._chains.get(chain.role)
        if chains is None:
            chains = self._chains[chain.role] = []
            self.unsigned_entries.labels(chain.role).set_function(
                lambda: sum(c.unsigned for c in chains)
            )
            self.unsigned_seconds.labels(chain.role).set_function(
                lambda: max((c.unsigned_seconds() for c in chains), default=0.0)
            )
        if not any(c is chain for c in chains):
            chains.append(chain)

    def write_values(self) -> None:
        """Set the gauges to their current values. Read at each scrape otherwise; a worker of
        a service of several processes (prometheus_client's multiprocess mode, where a scrape
        reads the values the workers wrote, not their functions) calls this every second."""
        for role, chains in self._chains.items():
            self.unsigned_entries.labels(role).set(sum(c.unsigned for c in chains))
            self.unsigned_seconds.labels(role).set(
                max((c.unsigned_seconds() for c in chains), default=0.0)
            )

    def forget(self, chain: SignedChain) -> None:
        """Stop exporting ``chain`` (stopped: a clean stop signed its head)."""
        chains = self._chains.get(chain.role, [])
        chains[:] = [c for c in chains if c is not chain]


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
        self.heads = AuditHeadMetrics(r, prefix)
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


class FreshnessMetrics:
    """The router's freshness gauges (更新周期): last publish and cycle per resource."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "gov_exchange") -> None:
        self.last_publish = Gauge(
            f"{prefix}_resource_last_publish_timestamp_seconds",
            "Unix time of the newest record published to a resource's source topic",
            ["resource"],
            registry=registry,
        )
        self.cycle = Gauge(
            f"{prefix}_resource_update_cycle_seconds",
            "The longest a resource may go unpublished under its declared update cycle "
            "(更新周期); resources published on change have none",
            ["resource"],
            registry=registry,
        )
        self.stale = Gauge(
            f"{prefix}_resource_stale",
            "1 while a resource's last publish is older than its update cycle allows, else 0",
            ["resource"],
            registry=registry,
        )


class DisputeMetrics:
    """The router's dispute gauge (疑义校核): disputes left unanswered past their deadline."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "gov_exchange") -> None:
        self.overdue = Gauge(
            f"{prefix}_disputes_overdue",
            "Disputes (疑义) still open after their working days, by the provider that owes "
            "the answer (as of the router's last dispute check)",
            ["provider"],
            registry=registry,
        )


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
        self.deletions = Counter(
            f"{prefix}_deletions",
            "Tombstones delivered to a consumer: RECORD_DELETED (the provider deleted the "
            "record), RECORD_LEFT_VIEW (an update moved it out of the row filter)",
            ["resource", "consumer", "action"],
            registry=r,
        )
        self.retractions = Counter(
            f"{prefix}_grant_retractions",
            "Retractions of a revoked or expired grant sent to its consumer (one per partition)",
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
        self.freshness = FreshnessMetrics(r, prefix)
        self.disputes = DisputeMetrics(r, prefix)

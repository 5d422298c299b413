"""Settings of the bus, read once at the entry point (env prefix ``EXCHANGE_``).

Library classes take what they need as arguments and never read the
environment themselves; only the CLI and the test fixtures build a
:class:`Settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from exchange.bus.connection import Connection, Secret
    from exchange.bus.topic_config import TopicPolicy


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gov-exchange"


class Settings(BaseSettings):
    """Everything an operator may set; each field is also ``EXCHANGE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, e.g. 'kafka1:9092,kafka2:9092'. "
        "When unset, the embedded broker started by 'exchange broker start' is used.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="Kafka's security.protocol: PLAINTEXT (the embedded broker), SASL_PLAINTEXT "
        "(users, no TLS: loopback or a private network only) or SASL_SSL (users over TLS)",
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="Kafka's sasl.mechanism for the SASL_* protocols"
    )
    sasl_username: str | None = Field(
        default=None,
        description="the Kafka user this process acts as: a department's id, gov-router, "
        "catalog-admin or auditor ('exchange acls --apply' creates them)",
    )
    sasl_password_file: Path | None = Field(
        default=None,
        description="file whose first line is the user's password (mode 0600); preferred to "
        "EXCHANGE_SASL_PASSWORD. Never pass a password on a command line",
    )
    sasl_password: SecretStr | None = Field(
        default=None, description="the user's password, when no password file is given"
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); "
        "default: the system's trusted CAs",
    )
    idempotent_producers: bool = Field(
        default=True,
        description="producers with Kafka's enable.idempotence: a send retried after a broker "
        "failure is written once and in order. Off on the embedded broker, which lacks it",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="where the embedded broker's pid, port and log are kept",
    )
    partitions: int = Field(default=3, ge=1, description="partitions of new source topics")
    replication_factor: int = Field(
        default=1,
        ge=1,
        description="replicas of every new topic (min.insync.replicas is min(2, it) from 2 on); "
        "a router or archiver refuses to start on a control or audit topic with fewer",
    )
    audit_retention_ms: int = Field(
        default=-1,
        ge=-1,
        description="retention of gov.audit: -1 (forever, the default: its entries are "
        "hash-chained, and the legal period of an access log is often years); a finite "
        "period only once the log is archived ('exchange audit archive')",
    )
    audit_retention_months: int = Field(
        default=6,
        ge=6,
        description="how long the access log is kept, in months: the archive refuses to prune "
        "a newer month ('exchange audit archive --prune-before'). At least 6: the Cybersecurity "
        "Law (《网络安全法》) art. 21(3) keeps network logs no less than six months",
    )
    audit_service: str | None = Field(
        default=None,
        description="the service identity (服务身份) this process signs its audit chain heads "
        "as, registered with its public key in the catalog's services.yaml (e.g. gov-router-1)",
    )
    audit_key_file: Path | None = Field(
        default=None,
        description="PEM file (mode 0600) of the Ed25519 private key of EXCHANGE_AUDIT_SERVICE "
        "('exchange keys generate'); never logged",
    )
    audit_sign_every_entries: int = Field(
        default=1000, ge=1, description="sign the chain head at least every this many entries"
    )
    audit_sign_every_s: float = Field(
        default=5.0, gt=0, description="sign the chain head at least this often (seconds)"
    )
    audit_trace_key: SecretStr | None = Field(
        default=None,
        description="secret (at least 32 random characters, the same on every router and for "
        "'exchange audit trace') keying the record-key hashes in delivery entries, so that "
        "reading gov.audit does not let anyone test an ID number. Unset: unkeyed hashes",
    )
    source_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000,
        ge=-1,
        description="retention of new gov.src.* topics when source_compaction is off",
    )
    source_compaction: bool = Field(
        default=True,
        description="compact new gov.src.* topics (the latest record per key, for backfills "
        "全量) unless the catalog declares the resource's source_retention_days",
    )
    source_tombstone_ms: int = Field(
        default=24 * 3600 * 1000,
        ge=0,
        description="how long a compacted gov.src.* topic keeps a deletion (tombstone)",
    )
    delivery_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000, ge=-1, description="retention of new gov.dlv.* topics"
    )
    dead_letter_retention_ms: int = Field(
        default=30 * 24 * 3600 * 1000, ge=-1, description="retention of new gov.dlq.* topics"
    )
    router_group: str = Field(default="gov-exchange-router", description="router consumer group")
    router_backfill: bool = Field(
        default=True,
        description="a new, wider or resynced view first gets the current state of the "
        "resource (全量: each key's latest record), then the changes; false: changes only",
    )
    router_backfill_chunk: int = Field(
        default=2_000,
        ge=1,
        le=1_000_000,
        description="backfilled records a router hands over between two live batches, at "
        "most (besides at most 2 MiB of them not yet acknowledged): lower keeps other "
        "consumers' latency lower, higher may backfill faster",
    )
    router_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        le=300_000,
        description="the router's consumer-group session timeout: a router silent this long "
        "loses its partitions to the others. The embedded broker holds every group join for "
        "half of it, so shorter means faster starts there; real Kafka refuses less than its "
        "group.min.session.timeout.ms (6 s by default)",
    )
    dispute_answer_working_days: int = Field(
        default=5,
        ge=1,
        le=60,
        description="working days (official calendar) a provider has to answer a data "
        "dispute (疑义校核); a dispute unanswered after them is overdue. Each dispute keeps "
        "the period it was opened with",
    )
    router_quality_check_s: float = Field(
        default=60.0,
        gt=0,
        description="how often a router measures each resource against its update cycle "
        "(更新周期) and looks for overdue disputes, in seconds",
    )
    mask_secret: SecretStr | None = Field(
        default=None,
        description="master secret from which per-consumer hash-mask keys are derived: at "
        "least 32 random characters, the same on every router of a bus. No default: a router "
        "outside the embedded development broker refuses to start without it (on that broker "
        "it makes a random one per bus)",
    )
    mask_secret_file: Path | None = Field(
        default=None,
        description="file whose first line is the mask secret (mode 0600); preferred to "
        "EXCHANGE_MASK_SECRET (systemd: LoadCredential=, then %d/mask-secret)",
    )
    development: bool = Field(
        default=False,
        description="set by a process on the embedded development broker for the commands it "
        "starts (Connection.environment()); PLAINTEXT only. Not a production setting",
    )
    request_timeout_s: float = Field(default=15.0, gt=0)
    log_level: str = Field(
        default="INFO",
        description="level of the bus's own log in long-running commands (router, connectors, "
        "audit archive): DEBUG, INFO, WARNING or ERROR",
    )
    client_log_level: str = Field(
        default="WARNING",
        description="level of the Kafka client libraries' log (aiokafka, kafka): their "
        "connection and group-membership lines at INFO drown the bus's own",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the Prometheus metrics endpoint listens on: loopback by default; "
        "0.0.0.0 (every interface) only behind a firewall",
    )

    http_login_failures: int = Field(
        default=10,
        ge=1,
        description="failed logins from one client address, within http_login_window_s, "
        "after which the HTTP services (exchange registry) answer its requests 429",
    )
    http_login_window_s: float = Field(
        default=60.0, gt=0, description="window in which failed logins are counted (seconds)"
    )
    http_login_block_s: float = Field(
        default=300.0,
        gt=0,
        description="how long a client that failed too often is refused (seconds; Retry-After)",
    )

    def topic_policy(self) -> TopicPolicy:
        """Partitions, replication and retention of the topics this process creates."""
        from exchange.bus.topic_config import TopicPolicy

        return TopicPolicy(
            replication_factor=self.replication_factor,
            partitions=self.partitions,
            audit_retention_ms=self.audit_retention_ms,
            source_retention_ms=self.source_retention_ms,
            source_compaction=self.source_compaction,
            source_tombstone_ms=self.source_tombstone_ms,
            delivery_retention_ms=self.delivery_retention_ms,
            dead_letter_retention_ms=self.dead_letter_retention_ms,
        )

    def password(self) -> Secret | None:
        """The SASL password: from ``sasl_password_file`` if set, else ``sasl_password``."""
        from exchange.bus.connection import Secret

        if self.sasl_password_file is not None:
            return Secret.from_file(self.sasl_password_file)
        if self.sasl_password is not None:
            return Secret(self.sasl_password.get_secret_value())
        return None

    def mask_secret_value(self) -> str | None:
        """The mask secret: from ``mask_secret_file`` if set, else ``mask_secret``."""
        from exchange.errors import ExchangeError

        if self.mask_secret_file is not None:
            path = self.mask_secret_file
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ExchangeError(
                    f"cannot read the mask secret file {path} (EXCHANGE_MASK_SECRET_FILE): "
                    f"{exc.strerror}"
                ) from None
            if not lines or not lines[0].strip():
                raise ExchangeError(f"the mask secret file {path} is empty")
            return lines[0].strip()
        return self.mask_secret.get_secret_value() if self.mask_secret is not None else None

    def connection(self, bootstrap: str, *, embedded: bool = False) -> Connection:
        """The :class:`~exchange.bus.connection.Connection` of this process to ``bootstrap``
        (``embedded``: the embedded broker, which has no idempotent producers, a development
        bus; so is one a parent process handed over as such, ``EXCHANGE_DEVELOPMENT``)."""
        from exchange.bus.connection import Connection

        return Connection(
            bootstrap,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            username=self.sasl_username,
            password=self.password(),
            ssl_cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
            topics=self.topic_policy(),
            idempotence=self.idempotent_producers and not embedded,
            # the embedded broker speaks PLAINTEXT only: a secured connection is never one
            development=(embedded or self.development) and self.security_protocol == "PLAINTEXT",
        )

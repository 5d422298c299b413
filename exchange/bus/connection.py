"""How a process reaches the bus and who it is there: one object, built once at the entry point.

A :class:`Connection` owns everything a Kafka client of the bus is made
from: the bootstrap servers, the transport security and the credentials
(Kafka's own names: ``security.protocol``, ``sasl.mechanism``, a user name
and a password, a CA file for TLS) and the :class:`~exchange.bus.topic_config.TopicPolicy`
(partitions, replication, retention) of the topics the process creates.
The CLI builds it from :class:`~exchange.settings.Settings`
(``EXCHANGE_SECURITY_PROTOCOL``, ``EXCHANGE_SASL_USERNAME``,
``EXCHANGE_SASL_PASSWORD_FILE`` ...); a program builds it itself::

    bus = Connection("kafka1:9092,kafka2:9092", security_protocol="SASL_SSL",
                     username="police", password=Secret.from_file("/etc/gov/police.password"),
                     ssl_cafile="/etc/gov/ca.pem")
    async with Department(bus, "police") as police: ...

The password is a :class:`Secret`: it never appears in a ``repr``, a log line
or an error message, and it is never taken from a command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from exchange.bus.topic_config import TopicPolicy
from exchange.errors import ExchangeError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class ConnectionSettingsError(ExchangeError):
    """The connection settings are incomplete or contradictory; says which setting."""


class Secret:
    """A password: printed as ``'**********'``; :meth:`reveal` gives it to the Kafka client."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def from_file(cls, path: str | Path) -> Secret:
        """The first line of ``path`` (a file only its owner can read, e.g. mode 0600)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConnectionSettingsError(
                f"cannot read the password file {path}: {exc.strerror}"
            ) from None
        value = text.splitlines()[0].strip() if text.strip() else ""
        if not value:
            raise ConnectionSettingsError(f"the password file {path} is empty")
        return cls(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


#: Apache Kafka's default ``fetch.max.wait.ms``: see :meth:`Connection.fetch_wait_ms`
KAFKA_FETCH_WAIT_MS = 500


@dataclass(frozen=True)
class Connection:
    """The bootstrap servers, security, credentials and topic policy of one process."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    topics: TopicPolicy = field(default_factory=TopicPolicy)
    #: producers with ``enable.idempotence``: a retry after a broker failure writes no
    #: duplicate and keeps the order. Apache Kafka has it; the embedded broker does not
    idempotence: bool = True
    #: the embedded development broker (``exchange broker start``, the demo, the test
    #: fixtures): only there may a router make up its own mask secret and a catalog load
    #: go unsigned without an override. Set by whoever started or found that broker, never
    #: guessed from an address; plain connections only (the embedded broker has no users)
    development: bool = False

    def fetch_wait_ms(self, embedded_ms: int) -> int:
        """How long a consumer's fetch may wait at the broker for a first record.

        Apache Kafka answers a waiting fetch the moment a record arrives, so a long wait
        costs no latency and spares the client from asking again and again: an idle
        consumer of 213 partitions on a 3-node cluster spent 18-48 % of a core decoding
        empty answers at 5 ms, 3 % at Kafka's default of 500 ms, and records published at
        2,000/s or at 20/s arrived no later (measured). The embedded broker answers only when
        the wait ends (p50 142 ms at 500 ms, 21 ms at 5 ms, at 20 records/s), so there the
        caller's ``embedded_ms`` applies.

        The cost on Kafka: requests on a connection are answered in order, so a ListOffsets
        or metadata request may wait behind a waiting fetch. Consumers that ask those while
        following (the control-topic follower's catch-up) keep a short wait instead.
        """
        return embedded_ms if self.development else KAFKA_FETCH_WAIT_MS

    def __post_init__(self) -> None:
        if not self.bootstrap.strip():
            raise ConnectionSettingsError("no bootstrap servers given (EXCHANGE_BOOTSTRAP_SERVERS)")
        if self.development and self.security_protocol != "PLAINTEXT":
            raise ConnectionSettingsError(
                f"a {self.security_protocol} connection is not the embedded development broker, "
                "which speaks PLAINTEXT only: unset EXCHANGE_DEVELOPMENT"
            )
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConnectionSettingsError(
                f"security protocol {self.security_protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)} (EXCHANGE_SECURITY_PROTOCOL)"
            )
        if self.sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConnectionSettingsError(
                    f"SASL mechanism {self.sasl_mechanism!r} is not one of "
                    f"{', '.join(SASL_MECHANISMS)} (EXCHANGE_SASL_MECHANISM)"
                )
            if not self.username:
                raise ConnectionSettingsError(
                    f"{self.security_protocol} needs a user name (EXCHANGE_SASL_USERNAME)"
                )
            if self.password is None:
                raise ConnectionSettingsError(
                    f"{self.security_protocol} needs the password of {self.username} "
                    "(EXCHANGE_SASL_PASSWORD_FILE, or EXCHANGE_SASL_PASSWORD)"
                )

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str | None:
        """The Kafka principal this process acts as (``User:<name>``), None if anonymous."""
        return f"User:{self.username}" if self.sasl and self.username else None

    def as_user(self, username: str, password: Secret) -> Connection:
        """The same bus reached as another SASL user (e.g. a department's own credentials)."""
        protocol: SecurityProtocol = "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return dataclasses.replace(
            self, security_protocol=protocol, username=username, password=password
        )

    def with_topics(self, policy: TopicPolicy) -> Connection:
        return dataclasses.replace(self, topics=policy)

    def client_options(self) -> dict[str, Any]:
        """aiokafka's options for a client of this connection (bootstrap and security)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            assert self.password is not None  # checked in __post_init__
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password.reveal(),
            )
        if self.tls:
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return options

    def sync_client_options(self) -> dict[str, Any]:
        """The same for kafka-python (its admin client applies ACLs and SCRAM users)."""
        options = self.client_options()
        options.pop("ssl_context", None)
        if self.tls and self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    def environment(self) -> dict[str, str]:
        """``EXCHANGE_*`` variables that give a child process this connection.

        The password goes in the environment of the child only (never on its command line).
        """
        env = {
            "EXCHANGE_BOOTSTRAP_SERVERS": self.bootstrap,
            "EXCHANGE_SECURITY_PROTOCOL": self.security_protocol,
            "EXCHANGE_PARTITIONS": str(self.topics.partitions),
            "EXCHANGE_REPLICATION_FACTOR": str(self.topics.replication_factor),
            "EXCHANGE_IDEMPOTENT_PRODUCERS": str(self.idempotence).lower(),
            "EXCHANGE_DEVELOPMENT": str(self.development).lower(),
        }
        if self.sasl:
            assert self.password is not None
            assert self.username is not None
            env.update(
                EXCHANGE_SASL_MECHANISM=self.sasl_mechanism,
                EXCHANGE_SASL_USERNAME=self.username,
                EXCHANGE_SASL_PASSWORD=self.password.reveal(),
            )
        if self.ssl_cafile:
            env["EXCHANGE_SSL_CAFILE"] = self.ssl_cafile
        return env

    def describe(self) -> str:
        """One line for logs and errors: where, how and as whom (never the password)."""
        who = f" as {self.username}" if self.sasl else ""
        dev = ", embedded development broker" if self.development else ""
        return f"{self.bootstrap} ({self.security_protocol}{who}{dev})"

    def __str__(self) -> str:
        return self.describe()

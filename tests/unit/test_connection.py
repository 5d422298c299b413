"""One connection object per process: bootstrap, security, credentials, topic policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.bus.connection import (
    KAFKA_FETCH_WAIT_MS,
    Connection,
    ConnectionSettingsError,
    Secret,
)
from exchange.bus.topic_config import TopicPolicy
from exchange.settings import Settings


def test_plain_connection_has_no_credentials() -> None:
    bus = Connection("k1:9092,k2:9092")
    assert bus.client_options() == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert bus.principal is None
    assert str(bus) == "k1:9092,k2:9092 (PLAINTEXT)"


def test_sasl_connection_gives_the_kafka_options_and_hides_the_password() -> None:
    bus = Connection(
        "k1:9092", security_protocol="SASL_PLAINTEXT", username="police", password=Secret("pw-1")
    )
    options = bus.client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "police"
    assert options["sasl_plain_password"] == "pw-1"
    assert bus.principal == "User:police"
    for text in (repr(bus), str(bus), bus.describe(), repr(bus.password)):
        assert "pw-1" not in text
    assert "as police" in bus.describe()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, "EXCHANGE_SASL_USERNAME"),
        (
            {"security_protocol": "SASL_SSL", "username": "police"},
            "EXCHANGE_SASL_PASSWORD_FILE",
        ),
        ({"security_protocol": "TLS"}, "EXCHANGE_SECURITY_PROTOCOL"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "GSSAPI",
                "username": "x",
                "password": Secret("p"),
            },
            "EXCHANGE_SASL_MECHANISM",
        ),
    ],
)
def test_incomplete_security_is_refused_naming_the_setting(
    kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ConnectionSettingsError, match=named):
        Connection("k1:9092", **kwargs)  # type: ignore[arg-type]


def test_a_password_file_is_read_and_a_missing_one_named(tmp_path: Path) -> None:
    path = tmp_path / "police.password"
    path.write_text("s3cret\n")
    assert Secret.from_file(path).reveal() == "s3cret"
    with pytest.raises(ConnectionSettingsError, match=r"missing\.password"):
        Secret.from_file(tmp_path / "missing.password")
    (tmp_path / "empty.password").write_text("\n")
    with pytest.raises(ConnectionSettingsError, match="is empty"):
        Secret.from_file(tmp_path / "empty.password")


def test_as_user_keeps_the_bus_and_changes_who() -> None:
    admin = Connection(
        "k1:9092",
        security_protocol="SASL_SSL",
        username="admin",
        password=Secret("a"),
        ssl_cafile="/etc/ca.pem",
        topics=TopicPolicy(replication_factor=3),
    )
    police = admin.as_user("police", Secret("p"))
    assert (police.bootstrap, police.security_protocol, police.ssl_cafile) == (
        "k1:9092",
        "SASL_SSL",
        "/etc/ca.pem",
    )
    assert police.topics.replication_factor == 3
    assert police.principal == "User:police"


def test_settings_build_the_connection_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "router.password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("EXCHANGE_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("EXCHANGE_SASL_USERNAME", "gov-router")
    monkeypatch.setenv("EXCHANGE_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("EXCHANGE_SASL_PASSWORD", "from-the-environment")
    monkeypatch.setenv("EXCHANGE_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("EXCHANGE_PARTITIONS", "6")
    bus = Settings().connection("k1:9092")
    assert bus.password is not None
    assert bus.password.reveal() == "from-a-file"  # the file wins over the variable
    assert (bus.topics.replication_factor, bus.topics.partitions) == (3, 6)
    assert bus.idempotence
    assert not Settings().connection("k1:9092", embedded=True).idempotence


def test_environment_hands_the_connection_to_a_child_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus = Connection(
        "k1:9092",
        security_protocol="SASL_PLAINTEXT",
        username="hrss",
        password=Secret("pw"),
        topics=TopicPolicy(replication_factor=3, partitions=4),
        idempotence=False,
    )
    for key, value in bus.environment().items():
        monkeypatch.setenv(key, value)
    again = Settings().connection(Settings().bootstrap_servers or "")
    assert again == bus


def test_development_is_explicit_and_handed_to_child_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the embedded development broker's connection is a development bus (issue 23)."""
    monkeypatch.delenv("EXCHANGE_DEVELOPMENT", raising=False)
    assert not Connection("127.0.0.1:9092").development  # never guessed from an address
    assert not Settings().connection("127.0.0.1:9092").development
    assert Settings().connection("127.0.0.1:9092", embedded=True).development
    dev = Connection("127.0.0.1:9092", idempotence=False, development=True)
    assert dev.environment()["EXCHANGE_DEVELOPMENT"] == "true"
    assert Connection("k1:9092").environment()["EXCHANGE_DEVELOPMENT"] == "false"
    for key, value in dev.environment().items():
        monkeypatch.setenv(key, value)
    again = Settings().connection(Settings().bootstrap_servers or "")
    assert again == dev
    with pytest.raises(ConnectionSettingsError, match="PLAINTEXT only"):
        Connection(
            "k1:9092",
            security_protocol="SASL_PLAINTEXT",
            username="x",
            password=Secret("pw"),
            development=True,
        )
    monkeypatch.setenv("EXCHANGE_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("EXCHANGE_SASL_USERNAME", "gov-router")
    monkeypatch.setenv("EXCHANGE_SASL_PASSWORD", "pw")
    assert not Settings().connection("k1:9092").development  # a secured bus never is one


def test_the_embedded_broker_connection_is_a_development_bus() -> None:
    from exchange.dev.broker import EmbeddedBroker

    bus = EmbeddedBroker(port=9).connection
    assert bus.development
    assert not bus.idempotence


def test_fetch_wait_is_kafkas_default_except_on_the_embedded_broker() -> None:
    # Apache Kafka answers a waiting fetch as soon as a record arrives: the long wait
    # costs no latency; the embedded broker answers only when it ends
    kafka_bus = Connection("127.0.0.1:9092")
    embedded = Connection("127.0.0.1:9092", idempotence=False, development=True)
    assert kafka_bus.fetch_wait_ms(embedded_ms=5) == KAFKA_FETCH_WAIT_MS == 500
    assert embedded.fetch_wait_ms(embedded_ms=5) == 5
    assert embedded.fetch_wait_ms(embedded_ms=20) == 20

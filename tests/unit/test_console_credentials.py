"""Where the console finds its departments' keys and passwords, as systemd and Kubernetes hand them over.

``LoadCredential=key:DIR`` gives every file of DIR as ``$CREDENTIALS_DIRECTORY/key_<file>``
(deploy/systemd/gov-exchange-console.service); the prefix options read them there.
On Strimzi a department logs in under its Kubernetes-safe user name
(deploy/k8s/console.yaml). A console missing a password it acts with refuses to
start, naming the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from exchange.admin.users import Principals
from exchange.bus.connection import Connection, Secret
from exchange.catalog import signing
from exchange.cli.console import _check_password_files
from exchange.console.desks import Desks

SASL = Connection(
    "kafka:9093",
    security_protocol="SASL_PLAINTEXT",
    username="gov-router",
    password=Secret("router-pw"),
)


def test_keys_are_found_under_the_systemd_credential_prefix(tmp_path: Path) -> None:
    pem, _ = signing.generate()
    (tmp_path / "key_civil_affairs.pem").write_bytes(pem)
    (tmp_path / "police.pem").write_bytes(pem)  # not under the prefix: not a key of the console
    desks = Desks(lambda _: SASL, tmp_path, "key_")
    assert desks.holds_key("civil_affairs")
    assert not desks.holds_key("police")
    assert desks.key_file("health") == tmp_path / "key_health.pem"
    assert Desks(lambda _: SASL, tmp_path).holds_key("police")
    assert not Desks(lambda _: SASL, None).holds_key("police")


def test_passwords_under_a_prefix_and_strimzi_user_names(tmp_path: Path) -> None:
    (tmp_path / "password_civil_affairs.password").write_text("ca-pw\n")
    plain = Principals(SASL, tmp_path, "password_").of("civil_affairs")
    assert plain.username == "civil_affairs"
    assert plain.password == Secret("ca-pw")
    strimzi = Principals(SASL, tmp_path, "password_", strimzi=True).of("civil_affairs")
    assert strimzi.username == "civil-affairs"
    assert strimzi.password == Secret("ca-pw")
    (tmp_path / "auditor.password").write_text("au-pw\n")
    assert Principals(SASL, tmp_path, strimzi=True).of("auditor").username == "auditor"


def test_a_missing_password_file_stops_the_console_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "password_police.password").write_text("p\n")
    (tmp_path / "password_auditor.password").write_text("a\n")
    principals = Principals(SASL, tmp_path, "password_")
    _check_password_files(principals, {"police"})  # all there
    with pytest.raises(typer.Exit):
        _check_password_files(principals, {"police", "health"})
    said = capsys.readouterr().err
    assert "no password file for 1 principal(s)" in said
    assert str(tmp_path / "password_health.password") in said
    # the wrong prefix: every file is missing
    with pytest.raises(typer.Exit):
        _check_password_files(Principals(SASL, tmp_path), {"police"})
    # no users on the cluster (the development broker): nothing to check
    _check_password_files(Principals(Connection("localhost:9092"), tmp_path), {"health"})

"""The bus's Kafka users: one SCRAM user per principal, its password in a file only it reads.

Every principal of :mod:`exchange.admin.acls` (each department of the catalog,
``gov-router``, ``catalog-admin`` and ``auditor``) gets a SCRAM-SHA-512 user
on the cluster. Its password is generated once and kept in
``<credentials dir>/<principal>.password`` (mode 0600, in a 0700 directory):
hand each department its own file, and set ``EXCHANGE_SASL_USERNAME`` and
``EXCHANGE_SASL_PASSWORD_FILE`` where it runs. Provisioning again after a
catalog change adds the new departments' users and ACLs and leaves existing
passwords alone.

:class:`Principals` gives the connection of each principal, for programs (the
demo, the benchmarks, the tests) that act as several of them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from exchange.admin import acls
from exchange.bus.connection import Connection, Secret
from exchange.catalog.model import Catalog
from exchange.errors import ExchangeError

SUFFIX = ".password"


def principals(catalog: Catalog) -> list[str]:
    """Every principal the bus needs on a cluster with ACLs, departments first."""
    return [*sorted(catalog.departments), acls.ROUTER, acls.ADMIN, acls.AUDITOR]


def password_file(credentials: Path, principal: str) -> Path:
    return credentials / f"{principal}{SUFFIX}"


def ensure_password(credentials: Path, principal: str) -> Secret:
    """The principal's password from its file, generated (and the file written 0600) if new."""
    credentials.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = password_file(credentials, principal)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return Secret.from_file(path)


@dataclass(frozen=True)
class Provisioned:
    users: list[str]
    acl_bindings: int
    credentials: Path


def provision(
    admin: Connection,
    catalog: Catalog,
    credentials: Path,
    *,
    router_group: str = acls.ROUTER_GROUP,
) -> Provisioned:
    """Create (or update) every principal's SCRAM user and every ACL on the cluster.

    ``admin`` is the cluster's super user. Users are written first, then the
    ACLs; both are idempotent, so a run that fails half-way is simply run again.
    """
    names = principals(catalog)
    set_passwords(admin, {n: ensure_password(credentials, n) for n in names})
    bindings = acls.apply(acls.generate(catalog, router_group=router_group), admin)
    return Provisioned(names, bindings, credentials)


def set_passwords(admin: Connection, passwords: dict[str, Secret]) -> None:
    """Create these SCRAM users, or change their passwords, as the super user ``admin``."""
    from kafka.admin import KafkaAdminClient, ScramMechanism, UserScramCredentialUpsertion
    from kafka.errors import KafkaError

    if not admin.sasl:
        raise ExchangeError(
            f"{admin.describe()} has no users: provisioning needs a cluster with SASL "
            "(EXCHANGE_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL and the super user's "
            "EXCHANGE_SASL_USERNAME / EXCHANGE_SASL_PASSWORD_FILE); the embedded broker has none"
        )
    mechanism = {
        "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
        "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
    }.get(admin.sasl_mechanism)
    if mechanism is None:
        raise ExchangeError(f"users are SCRAM users; {admin.sasl_mechanism} cannot create them")
    upserts = [
        UserScramCredentialUpsertion(name, mechanism, password.reveal())
        for name, password in passwords.items()
    ]
    try:
        client = KafkaAdminClient(**admin.sync_client_options(), client_id="gov-exchange-users")
    except KafkaError as exc:
        raise ExchangeError(f"cannot reach Kafka at {admin.describe()}: {exc}") from exc
    try:
        errors = client.alter_user_scram_credentials(upserts)
    finally:
        client.close()
    refused = {n: e for n, e in (errors or {}).items() if e}
    if refused:
        raise ExchangeError(
            "the cluster refused to set the SCRAM credentials of "
            + ", ".join(f"{n} ({e})" for n, e in sorted(refused.items()))
        )


@dataclass(frozen=True)
class Principals:
    """The connection of each principal: its own user on a cluster with users, else ``base``.

    Its password is ``<credentials>/<prefix><principal>.password``: ``prefix`` is
    empty as ``exchange acls --apply`` writes the folder, and ``password_`` when
    systemd hands the folder over (``LoadCredential=password:DIR`` names each file
    ``password_<file>``). ``strimzi``: log in under the principal's Strimzi user
    name (``civil_affairs`` as ``civil-affairs``; :func:`acls.strimzi_user_name`).
    """

    base: Connection
    credentials: Path | None = None
    prefix: str = ""
    strimzi: bool = False

    def of(self, principal: str) -> Connection:
        if self.credentials is None or not self.base.sasl:
            return self.base
        path = password_file(self.credentials, f"{self.prefix}{principal}")
        user = acls.strimzi_user_name(principal) if self.strimzi else principal
        return self.base.as_user(user, Secret.from_file(path))

"""Who is calling: HTTP basic authentication against the bus's own users.

A department reaches every HTTP service with the user name and password it
already has for the broker (``exchange acls --apply`` made them: one SCRAM
user per department, ``gov-router``, ``catalog-admin`` and ``auditor``), sent
as HTTP basic credentials: every Kafka client, Schema Registry client and
tool (confluent-kafka's ``basic.auth.user.info``, Java's
``basic.auth.credentials.source=USER_INFO``, kcat's ``https://user:pass@...``)
can send those, and no second set of secrets has to be handed out or revoked.

Two ways to check them, chosen where the service starts:

* :class:`BrokerLogin` (production): a SCRAM login to the broker as that user.
  The broker stays the one place passwords live; changing or deleting a Kafka
  user takes effect here within :data:`CACHE_S`.
* :class:`PasswordFiles`: the files ``exchange acls --apply`` writes
  (``<dir>/<user>.password``), for a bus whose broker has no users (the
  embedded one) and for tests.

Anonymous requests are refused (401) unless the service names a principal
they act as. Credentials that are given and wrong are refused either way; a
client that gives wrong ones too often waits (429, :mod:`.throttle`). When the
app has an :class:`~exchange.http.access_audit.AccessAudit` (``app.state.access_audit``),
both refusals go to the access log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, Request

from exchange.admin.acls import principal_of_user
from exchange.bus.connection import Connection, Secret
from exchange.http import signed
from exchange.http.access_audit import AccessAudit, client_address, refusal
from exchange.http.errors import HttpError
from exchange.http.signed import SignedRequests
from exchange.http.throttle import LoginThrottle

log = logging.getLogger(__name__)

#: principals that see everything (the access log's reader, the catalog's keeper, the router)
SEE_ALL = frozenset({"auditor", "catalog-admin", "gov-router"})
#: seconds a successful check is remembered (per user and password)
CACHE_S = 60.0
#: a Kafka user name as the bus makes them: no path separators, no control characters
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")
REALM = 'Basic realm="gov-exchange", charset="UTF-8"'


@dataclass(frozen=True)
class Principal:
    """The caller: a department's id, or one of the bus's own principals."""

    name: str
    anonymous: bool = False

    @property
    def sees_all(self) -> bool:
        return self.name in SEE_ALL


class Authenticator(Protocol):
    async def check(self, user: str, password: str) -> bool:
        """True if ``password`` is ``user``'s password."""
        ...


_RACY_NS = 2_000_000_000


class PasswordFiles:
    """Passwords from ``<directory>/<user>.password``, the files ``exchange acls --apply`` writes.

    A file is read again only when it changed (its inode, size or modification time):
    every request costs one ``stat``, and a password changed or a file deleted
    counts from the next request on.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._read: dict[str, tuple[tuple[int, int, int], bytes]] = {}

    async def check(self, user: str, password: str) -> bool:
        expected = self._expected(user)
        if expected is None:
            decoy = secrets.token_urlsafe(24).encode()  # compare anyway: no timing difference
            hmac.compare_digest(decoy, password.encode())
            return False
        return bool(expected) and hmac.compare_digest(expected, password.encode())

    def _expected(self, user: str) -> bytes | None:
        """``user``'s password as its file holds it now (None: no such file, or unreadable)."""
        path = os.path.join(self.directory, f"{user}.password")
        try:
            st = os.stat(path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            known = self._read.get(user)
            if known is not None and known[0] == stamp:
                return known[1]
            # a few bytes from the page cache: harmless on the event loop
            with open(path, encoding="utf-8") as f:
                expected = f.read().strip().encode()
        except (OSError, UnicodeDecodeError):
            self._read.pop(user, None)
            return None
        if len(self._read) > 10_000:  # bounded: user names come from requests
            self._read.clear()
        # a file changed within the last seconds may change again within the clock's
        # granularity without its stamp changing ("racy", as git calls it): read it again
        if time.time_ns() - st.st_mtime_ns > _RACY_NS:
            self._read[user] = (stamp, expected)
        return expected


class BrokerLogin:
    """A SCRAM (or PLAIN) login to the broker as the user: the broker decides.

    One connection to a bootstrap server, SASL handshake and authentication, then
    closed. The broker's answer is read by its error code, not its wording: a
    ``SaslAuthenticationFailed`` (Kafka's error 58, wrong user name or password) is
    a refusal; a broker that cannot be reached at all (every bootstrap server
    tried) is a 503; a broker that does not offer the mechanism is a 503 too
    (the service is misconfigured, the caller is not at fault).
    """

    def __init__(self, bus: Connection, *, timeout_s: float = 10.0) -> None:
        if not bus.sasl:
            raise ValueError(
                "checking passwords against the broker needs a SASL connection "
                "(EXCHANGE_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL)"
            )
        self.bus = bus
        self.timeout_s = timeout_s

    async def check(self, user: str, password: str) -> bool:
        from aiokafka.conn import collect_hosts, create_conn
        from aiokafka.errors import KafkaError, SaslAuthenticationFailed

        options = self.bus.as_user(user, Secret(password)).client_options()
        options.pop("bootstrap_servers")
        problems: list[str] = []
        for host, port, _family in collect_hosts(self.bus.bootstrap):
            try:
                conn = await create_conn(
                    host, port, request_timeout_ms=int(self.timeout_s * 1000), **options
                )
            except SaslAuthenticationFailed:
                return False
            except (OSError, KafkaError, TimeoutError) as exc:
                problems.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
                continue
            conn.close()
            return True
        log.error("cannot check credentials: no broker answered: %s", "; ".join(problems))
        raise HttpError(503, 50302, "the broker cannot be reached to check credentials")


class CachedAuthenticator:
    """Remembers successful checks for :data:`CACHE_S` (a broker login per request is slow).

    Keys are an HMAC of the password under a key made for this process, so the
    cache never holds a password.
    """

    def __init__(self, inner: Authenticator, *, ttl_s: float = CACHE_S) -> None:
        self.inner = inner
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._ok: dict[tuple[str, bytes], float] = {}

    async def check(self, user: str, password: str) -> bool:
        tag = hmac.new(self._key, password.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        until = self._ok.get((user, tag))
        if until is not None and until > now:
            return True
        ok = await self.inner.check(user, password)
        if ok:
            if len(self._ok) > 10_000:  # bounded: forget the expired
                self._ok = {k: t for k, t in self._ok.items() if t > now}
            self._ok[(user, tag)] = now + self.ttl_s
        else:
            self._ok.pop((user, tag), None)
        return ok


def unauthorized(message: str) -> HttpError:
    return HttpError(401, 401, message, headers={"WWW-Authenticate": REALM})


def basic_credentials(header: str) -> tuple[str, str]:
    """(user, password) of an ``Authorization: Basic ...`` header; 401 if it is not one."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise unauthorized("Unauthorized: use HTTP basic authentication")
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized("Unauthorized: malformed basic credentials") from None
    if not sep or not USER_NAME.match(user):
        raise unauthorized("Unauthorized: malformed basic credentials")
    return user, password


class Gate:
    """What a service checks every request with: its authenticator, anonymous policy and
    throttle, and (if set) requests signed with a department's registered key (:mod:`.signed`)."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        anonymous: str | None = None,
        throttle: LoginThrottle | None = None,
        signed: SignedRequests | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.anonymous = anonymous
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self.signed = signed

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            if self.anonymous is None:
                raise unauthorized("Unauthorized: credentials are required")
            return Principal(self.anonymous, anonymous=True)
        client = client_address(request)
        wait = self.throttle.retry_after(client)
        if wait is not None:
            raise HttpError(
                429,
                42901,
                f"Too many failed logins from {client}: try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if self.signed is not None and header.startswith(f"{signed.SCHEME} "):
            return Principal(await self.signed.department(request, header))
        try:
            user, password = basic_credentials(header)
        except HttpError as exc:
            self._failed(request, client, "anonymous", exc.message)
            raise
        if not await self.authenticator.check(user, password):
            log.info("refused the credentials given for user %r", user)
            self._failed(request, client, user, "wrong user name or password")
            raise unauthorized("Unauthorized: wrong user name or password")
        # on Strimzi, department civil_affairs is Kafka user civil-affairs (Kubernetes names)
        return Principal(principal_of_user(user))

    def _failed(self, request: Request, client: str, user: str, why: str) -> None:
        """Count a failed login; audit it, and the block it may start."""
        blocks = self.throttle.failed(client)
        app = request.scope.get("app")  # absent for a request made outside an app
        audit: AccessAudit | None = getattr(app.state, "access_audit", None) if app else None
        if audit is None:
            return
        audit.refused(refusal(request, actor=user, status=401, code=401, reason=why))
        if blocks:
            t = self.throttle
            reason = (
                f"{t.max_failures} failed logins from {client} within {t.window_s:g} s: "
                f"its requests with credentials are refused (429) for {t.block_s:g} s"
            )
            audit.refused(refusal(request, actor=user, status=429, code=42901, reason=reason))


async def principal(request: Request) -> Principal:
    """The FastAPI dependency every protected route takes: the caller, or 401."""
    gate: Gate = request.app.state.gate
    return await gate.principal(request)


#: a route's parameter for the caller: ``caller: Caller``
Caller = Annotated[Principal, Depends(principal)]

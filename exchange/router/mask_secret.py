"""The master secret of ``hash`` masks: configured in production, made up on a development bus.

Every ``hash``-masked value and every hashed delivery key is an HMAC under a
key derived from one master secret (:func:`exchange.enforce.masks.consumer_key`).
Anyone who knows it can recompute the hashes, and since ID numbers have few
possible values, reverse them by trying all. So a secret written in the
source code is no secret, and there is no default:

* outside the embedded development broker (``Connection.development`` false)
  a router refuses to start without ``EXCHANGE_MASK_SECRET``, or with the
  value the settings once had as their default, or with one shorter than
  :data:`~exchange.enforce.masks.MIN_MASTER_SECRET_BYTES` bytes, and says how
  to set one;
* on the embedded development broker a router without one makes a random
  secret for that bus (kept in a file of the state directory, so every router
  of the bus uses the same one) and says so.

Rotation: every router of the bus gets the new secret and restarts. From then
on every hashed value and hashed delivery key of every consumer differs from
before (old and new values cannot be joined), and the ``RECORDS_DELIVERED``
entries of views that hash name the new key by its fingerprint (detail
``mask_key``), so the audit log shows when each consumer's key changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from exchange.bus.connection import Connection
from exchange.enforce.masks import MIN_MASTER_SECRET_BYTES
from exchange.errors import ExchangeError

#: master secrets that are public (they were written in the source code): never used outside
#: the embedded development broker
PUBLIC_SECRETS = frozenset({b"change-me: set EXCHANGE_MASK_SECRET in production"})

HOW_TO_SET = (
    "set EXCHANGE_MASK_SECRET to at least 32 random characters, the same on every router of "
    "the bus and kept like a password, e.g. "
    "EXCHANGE_MASK_SECRET=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\""
)


class MaskSecretError(ExchangeError):
    """A router would run with a mask secret anyone can know; says how to set one."""


@dataclass(frozen=True)
class MaskSecret:
    value: bytes
    #: where it came from, one line for the operator
    origin: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)


def fingerprint(secret: bytes) -> str:
    """16 hex characters naming a secret (or a derived key) without revealing it."""
    return hashlib.sha256(b"gov-exchange key fingerprint\0" + secret).hexdigest()[:16]


def check(secret: bytes, *, development: bool) -> None:
    """Refuse a master secret that is public (outside development) or too short (anywhere)."""
    if secret in PUBLIC_SECRETS and not development:
        raise MaskSecretError(
            "the mask secret is the old built-in default, which is public (it is in the "
            f"source code): hash masks would be reversible. {HOW_TO_SET}"
        )
    if len(secret) < MIN_MASTER_SECRET_BYTES:
        raise MaskSecretError(
            f"the mask secret has {len(secret)} bytes, fewer than {MIN_MASTER_SECRET_BYTES}: "
            f"it could be guessed and hash masks undone. {HOW_TO_SET}"
        )


def dev_secret_path(state_dir: Path, bus: Connection) -> Path:
    """The file of the random secret made for the development bus ``bus``."""
    return state_dir / "mask-secrets" / re.sub(r"[^A-Za-z0-9.-]", "_", bus.bootstrap)


def resolve(configured: str | None, bus: Connection, state_dir: Path) -> MaskSecret:
    """The master secret a router of ``bus`` uses: ``configured`` (``EXCHANGE_MASK_SECRET``)
    if set and usable; on the embedded development broker a random one per bus; else refused.
    """
    value = configured.encode() if configured else b""
    if value and value not in PUBLIC_SECRETS:
        check(value, development=bus.development)
        return MaskSecret(value, "EXCHANGE_MASK_SECRET")
    if not bus.development:
        if value:
            check(value, development=False)  # raises: the public default
        raise MaskSecretError(
            "no mask secret: a router outside the embedded development broker needs its own, "
            f"or hash masks are reversible. {HOW_TO_SET}"
        )
    path = dev_secret_path(state_dir, bus)
    secret = _made_once(path)
    why = "is the old public default" if value else "is not set"
    return MaskSecret(
        secret,
        f"EXCHANGE_MASK_SECRET {why}: using a random mask secret made for this development "
        f"bus (in {path}); production routers refuse to start without one",
    )


def _made_once(path: Path) -> bytes:
    """The secret in ``path``, made (random, mode 0600) by the first router that asks;
    written whole before it appears (a hard link), so a second router never reads half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another router made it first: use that one
        finally:
            tmp.unlink()
    return path.read_text(encoding="ascii").strip().encode()

"""Signed chain heads: a writer's Ed25519 signature over the newest entry of its chain.

A hash chain shows edits, insertions and gaps, not a tail cut off after its
last entry, nor a whole chain forged under a new writer id with valid
hashes. So every writer holds the key of a service identity (服务身份)
registered in the catalog (``services.yaml``: ``gov-router-1``, ...) and
regularly writes a ``CHAIN_HEAD`` entry into its own chain: the service, and
the writer, seq, hash and time of the entry before it, signed. Anyone with
the catalog checks it; no one without the service's private key can make one.

The signature covers :func:`head_payload`: the canonical JSON (keys sorted,
no whitespace) of ``{"service", "writer", "seq", "hash", "at"}``, ``at`` in
epoch milliseconds. The private key stays in the :class:`HeadSigner`: its
``repr`` names the service only, and nothing here logs or prints it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.audit.entry import Action, AuditEntry, Decision, Draft, to_millis

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: the details of a CHAIN_HEAD entry
SERVICE, HEAD_SEQ, HEAD_HASH, HEAD_AT, SIGNATURE = (
    "service",
    "head_seq",
    "head_hash",
    "head_at",
    "signature",
)
DEFAULT_EVERY_ENTRIES = 1000
DEFAULT_EVERY_S = 5.0


def head_payload(service: str, writer: str, seq: int, hash_: str, at_ms: int) -> bytes:
    """The bytes a head's signature covers."""
    data = {"service": service, "writer": writer, "seq": seq, "hash": hash_, "at": at_ms}
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Head:
    """A signed head as read back from a CHAIN_HEAD entry."""

    service: str
    writer: str
    seq: int  # the seq of the entry it covers (every seq up to it is covered)
    hash: str
    at_ms: int
    signature: str

    @classmethod
    def of(cls, e: AuditEntry) -> Head | None:
        """The head an entry carries; None if it is no CHAIN_HEAD or lacks a field."""
        if e.action is not Action.CHAIN_HEAD:
            return None
        d = e.details
        try:
            return cls(
                d[SERVICE], e.writer, int(d[HEAD_SEQ]), d[HEAD_HASH], int(d[HEAD_AT]), d[SIGNATURE]
            )
        except (KeyError, ValueError):
            return None

    def valid(self, public_key_b64: str) -> bool:
        """Whether the signature verifies with this public key (base64 raw Ed25519)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
            key.verify(
                base64.b64decode(self.signature, validate=True),
                head_payload(self.service, self.writer, self.seq, self.hash, self.at_ms),
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass
class HeadSigner:
    """A service identity's private key and when to sign: every N entries, every T seconds."""

    service: str
    key: Ed25519PrivateKey = field(repr=False)
    every_entries: int = DEFAULT_EVERY_ENTRIES
    every_s: float = DEFAULT_EVERY_S

    def __post_init__(self) -> None:
        if self.every_entries < 1:
            raise ValueError(f"every_entries must be at least 1, not {self.every_entries}")
        if self.every_s <= 0:
            raise ValueError(f"every_s must be positive, not {self.every_s}")

    @classmethod
    def from_file(
        cls,
        service: str,
        path: Path,
        *,
        every_entries: int = DEFAULT_EVERY_ENTRIES,
        every_s: float = DEFAULT_EVERY_S,
    ) -> HeadSigner:
        """The key in a PEM file (errors name the file, never its content)."""
        from exchange.catalog.signing import load_private_key

        return cls(service, load_private_key(path), every_entries, every_s)

    def check_registered(self, keys: dict[str, str]) -> None:
        """Refuse (:class:`SigningError`) a service the catalog does not register with this key:
        its heads would verify as bad signatures."""
        from exchange.catalog.signing import SigningError, public_key_of

        registered = keys.get(self.service)
        if registered is None:
            raise SigningError(
                f"the audit service identity {self.service!r} (EXCHANGE_AUDIT_SERVICE) is not "
                "in the catalog's services.yaml: register it with its public key and load the "
                "catalog, or its chain heads will not verify"
            )
        if registered != public_key_of(self.key):
            raise SigningError(
                f"the key in EXCHANGE_AUDIT_KEY_FILE is not the one the catalog registers for "
                f"{self.service!r} (services.yaml): its chain heads would not verify"
            )

    def draft(self, covered: AuditEntry) -> Draft:
        """The CHAIN_HEAD entry that signs ``covered`` (the newest entry of its chain)."""
        at_ms = to_millis(covered.at)
        payload = head_payload(self.service, covered.writer, covered.seq, covered.hash, at_ms)
        signature = base64.b64encode(self.key.sign(payload)).decode("ascii")
        return Draft(
            Action.CHAIN_HEAD,
            actor=self.service,
            decision=Decision.SIGNED,
            details={
                SERVICE: self.service,
                HEAD_SEQ: str(covered.seq),
                HEAD_HASH: covered.hash,
                HEAD_AT: str(at_ms),
                SIGNATURE: signature,
            },
        )


class _Default:
    signer: HeadSigner | None = None


def install(signer: HeadSigner | None) -> None:
    """Make ``signer`` the one every :class:`~exchange.audit.writer.AuditWriter` of this
    process uses unless given another; the entry point calls it once, from the settings."""
    _Default.signer = signer


def installed() -> HeadSigner | None:
    return _Default.signer


def from_settings(settings: Any) -> HeadSigner | None:
    """The signer the settings name (``audit_service`` and ``audit_key_file``), or None."""
    service, path = settings.audit_service, settings.audit_key_file
    if service is None and path is None:
        return None
    from exchange.catalog.signing import SigningError

    if service is None or path is None:
        missing = "EXCHANGE_AUDIT_SERVICE" if service is None else "EXCHANGE_AUDIT_KEY_FILE"
        raise SigningError(
            f"{missing} is not set: an audit writer signs its chain heads with a service "
            "identity (EXCHANGE_AUDIT_SERVICE) and its key (EXCHANGE_AUDIT_KEY_FILE), both"
        )
    return HeadSigner.from_file(
        service,
        Path(path),
        every_entries=settings.audit_sign_every_entries,
        every_s=settings.audit_sign_every_s,
    )

"""Signed commands: a department proves it is the one acting (Ed25519).

A department that registers a public key in the catalog (``public_key`` in
``departments.yaml``, base64 of the raw 32-byte Ed25519 key) must sign every
command it makes; the permission manager refuses, and audits, any command
"from" it whose signature is missing or does not verify, even on a broker
without authentication. Departments without a registered key are trusted by
their ``--as`` name, as before (the README says so).

The signature covers the canonical JSON of every field of the command but the
signature itself (keys sorted, times as epoch milliseconds).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.errors import ExchangeError

# cryptography is imported when a key is used (signing, verifying, loading, generating):
# a command on a bus whose catalog registers no key does not pay for it
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class SigningError(ExchangeError):
    """A key file or public key that cannot be used."""


def canonical(fields: dict[str, Any]) -> bytes:
    def norm(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return int(v.timestamp() * 1000)
        if isinstance(v, tuple | list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    data = {k: norm(v) for k, v in fields.items() if k != "signature"}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key: Ed25519PrivateKey, fields: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(canonical(fields))).decode("ascii")


def verify(public_key_b64: str, fields: dict[str, Any], signature: str | None) -> bool:
    if not signature:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature, validate=True), canonical(fields))
    except (InvalidSignature, ValueError):
        return False
    return True


def generate() -> tuple[bytes, str]:
    """A new key pair: (private key as PEM, public key as base64 for the catalog)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_key_of(key)


def public_key_of(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key; errors name the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningError(f"{path}: cannot read key file: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path}: not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 key")
    return key


def check_public_key(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("public_key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"public_key is {len(raw)} bytes; an Ed25519 key has 32")
    return value

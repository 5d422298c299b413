"""Requests signed with a department's registered Ed25519 key, replay-protected.

The other way (besides HTTP basic with its bus password) a department proves who
calls: the key it registered in the catalog (``public_key`` in departments.yaml,
the key its commands are signed with). The request carries::

    Authorization: Exchange-Ed25519 dept=<id>,ts=<unix seconds>,nonce=<16-64 characters>,sig=<base64>

and the signature covers ``METHOD\\nPATH?QUERY\\nts\\nnonce\\nSHA-256(body) hex``. A
request is accepted once: its time must be within :data:`WINDOW_S` of the server's
clock, and its nonce unseen from that department within the window (a captured
request replayed, even over TLS termination logs, gets 401).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request

from exchange.http.errors import HttpError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEME = "Exchange-Ed25519"
#: seconds a signed request stays valid either side of the server's clock
WINDOW_S = 300
_PARAM = re.compile(r"^(dept|ts|nonce|sig)=([A-Za-z0-9_.@+/=-]{1,200})$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_NONCES = 1_000_000


def signed_text(method: str, target: bytes, ts: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return b"\n".join(
        [method.upper().encode(), target, ts.encode(), nonce.encode(), digest.encode()]
    )


def authorization(
    key: Ed25519PrivateKey,
    department: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> str:
    """The ``Authorization`` header of a request (``target``: the path and query as sent)."""
    ts = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_urlsafe(18)
    sig = base64.b64encode(key.sign(signed_text(method, target.encode(), ts, nonce, body)))
    return f"{SCHEME} dept={department},ts={ts},nonce={nonce},sig={sig.decode()}"


def _refused(message: str) -> HttpError:
    return HttpError(401, 401, f"Unauthorized: {message}", headers={"WWW-Authenticate": SCHEME})


class SignedRequests:
    """Checks signed requests against the public keys ``public_key(department)`` gives."""

    def __init__(
        self, public_key: Callable[[str], str | None], *, window_s: int = WINDOW_S
    ) -> None:
        self.public_key = public_key
        self.window_s = window_s
        self._seen: dict[tuple[str, str], float] = {}

    def _params(self, header: str) -> dict[str, str]:
        _scheme, _, rest = header.partition(" ")
        params: dict[str, str] = {}
        for part in rest.split(","):
            m = _PARAM.match(part.strip())
            if m is None or m.group(1) in params:
                raise _refused(f"malformed {SCHEME} credentials")
            params[m.group(1)] = m.group(2)
        if params.keys() != {"dept", "ts", "nonce", "sig"}:
            raise _refused(f"{SCHEME} needs dept, ts, nonce and sig")
        return params

    async def department(self, request: Request, header: str) -> str:
        """The department that signed ``request``; 401 if the signature, time or nonce is wrong."""
        p = self._params(header)
        now = time.time()
        if not p["ts"].isdigit() or abs(now - int(p["ts"])) > self.window_s:
            raise _refused(f"the request time is not within {self.window_s} s of the server's")
        if not _NONCE.match(p["nonce"]):
            raise _refused("the nonce must be 16 to 64 URL-safe characters")
        key = self.public_key(p["dept"])
        if key is None:
            raise _refused(f"{p['dept']!r} has no public key registered in the catalog")
        target = request.scope.get("raw_path") or b""
        if request.scope.get("query_string"):
            target += b"?" + request.scope["query_string"]
        text = signed_text(request.method, target, p["ts"], p["nonce"], await request.body())
        if not _verifies(key, p["sig"], text):
            raise _refused("the signature does not verify with the registered key")
        seen_key = (p["dept"], p["nonce"])
        if seen_key in self._seen:
            raise _refused("this request was already received (a replay)")
        if len(self._seen) >= MAX_NONCES:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        self._seen[seen_key] = now + 2 * self.window_s
        return p["dept"]


def _verifies(public_key_b64: str, signature: str, text: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature, validate=True), text)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True

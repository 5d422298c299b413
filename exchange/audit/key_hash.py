"""Record-key hashes in delivery entries: what lets ``exchange audit trace`` find a citizen's records.

Each ``RECORDS_DELIVERED`` entry lists, in its ``key_hashes`` detail, one
``HASH:OFFSET`` per record it delivered: a keyed BLAKE2b hash (8 bytes,
base64url, 11 characters) of the resource id and the record's key, and the
record's offset in its source partition (the delivered record carries it in
its ``gov-source-offset`` header). No value leaves the router: an ID number
becomes a hash that only a holder of the trace key (``EXCHANGE_AUDIT_TRACE_KEY``,
the routers and the auditor) can compute, so reading ``gov.audit`` does not let
anyone test whether an ID number was delivered. Without a trace key the hash
is unkeyed (anyone can test a guess): the router says so when it starts.

Why here and not an index kept beside the log: the entry is hash-chained and
covered by a signed head, so who received a key is as tamper-evident as the
delivery itself; the archive indexes the hashes (``audit_keys``) for fast lookups.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

#: the details field of a delivery entry that holds the hashes
KEY_HASHES = "key_hashes"
DIGEST_BYTES = 8


class KeyHasher:
    """Hashes a resource's record keys with the trace key (or unkeyed, when there is none).

    Per resource, a BLAKE2b state keyed and fed the resource id is kept and copied for
    each key: a copy and an update cost a third of a keyed hash made from scratch.
    """

    __slots__ = ("_base", "_keyed", "_per_resource")

    def __init__(self, secret: bytes | None) -> None:
        # BLAKE2b takes a key of at most 64 bytes: a longer secret is hashed down to one
        key = secret or b""
        key = key if len(key) <= 64 else hashlib.blake2b(key).digest()
        self._keyed = bool(key)
        self._base = hashlib.blake2b(digest_size=DIGEST_BYTES, key=key)
        self._per_resource: dict[str, Any] = {}

    @property
    def keyed(self) -> bool:
        return self._keyed

    def __repr__(self) -> str:
        return f"KeyHasher(keyed={self._keyed})"

    def _state(self, resource: str) -> Any:
        state = self._per_resource.get(resource)
        if state is None:
            state = self._base.copy()
            state.update(resource.encode() + b"\0")
            self._per_resource[resource] = state
        return state

    def digest(self, resource: str, key: bytes) -> str:
        h = self._state(resource).copy()
        h.update(key)
        return _b64(h.digest())

    def details(
        self,
        resource: str,
        delivered: Iterable[tuple[bytes, int]],
        cache: dict[bytes, str] | None = None,
    ) -> str:
        """The ``key_hashes`` detail of a delivery: ``HASH:OFFSET`` per record, comma-joined.

        ``cache``: digests already computed for this resource (a record delivered to
        several consumers is hashed once)."""
        state = self._state(resource)
        seen = cache if cache is not None else {}
        parts = []
        for key, offset in delivered:
            digest = seen.get(key)
            if digest is None:
                h = state.copy()
                h.update(key)
                digest = seen[key] = _b64(h.digest())
            parts.append(f"{digest}:{offset}")
        return ",".join(parts)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw)[:11].decode("ascii")


def parse(value: str) -> Iterator[tuple[str, int]]:
    """The (hash, source offset) pairs of a ``key_hashes`` detail."""
    if not value:
        return
    for item in value.split(","):
        digest, _, offset = item.partition(":")
        yield digest, int(offset)

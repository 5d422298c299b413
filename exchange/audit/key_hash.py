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

#: the details field of a delivery entry that holds the hashes
KEY_HASHES = "key_hashes"
DIGEST_BYTES = 8


class KeyHasher:
    """Hashes a resource's record keys with the trace key (or unkeyed, when there is none)."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes | None) -> None:
        # BLAKE2b takes a key of at most 64 bytes: a longer secret is hashed down to one
        key = secret or b""
        self._key = key if len(key) <= 64 else hashlib.blake2b(key).digest()

    @property
    def keyed(self) -> bool:
        return bool(self._key)

    def __repr__(self) -> str:
        return f"KeyHasher(keyed={self.keyed})"

    def digest(self, resource: str, key: bytes) -> str:
        h = hashlib.blake2b(
            resource.encode() + b"\0" + key, digest_size=DIGEST_BYTES, key=self._key
        )
        return base64.urlsafe_b64encode(h.digest()).decode("ascii").rstrip("=")

    def details(self, resource: str, delivered: Iterable[tuple[bytes, int]]) -> str:
        """The ``key_hashes`` detail of a delivery: ``HASH:OFFSET`` per record, comma-joined."""
        return ",".join(f"{self.digest(resource, k)}:{o}" for k, o in delivered)


def parse(value: str) -> Iterator[tuple[str, int]]:
    """The (hash, source offset) pairs of a ``key_hashes`` detail."""
    if not value:
        return
    for item in value.split(","):
        digest, _, offset = item.partition(":")
        yield digest, int(offset)

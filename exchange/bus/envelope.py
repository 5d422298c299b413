"""What every record on the bus carries besides its value: the headers and the record id.

``gov-record-id`` is stable: the same resource and the same Avro body always
give the same id, so a record published twice, or routed twice after a crash
(at-least-once), carries one id and readers drop the copy. ``gov-publisher``
names the department that published it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

RECORD_ID = "gov-record-id"
PUBLISHER = "gov-publisher"


def record_id(resource: str, body: bytes | memoryview) -> str:
    """The record's id: the first 128 bits of SHA-256 over the resource and the Avro body."""
    return record_ids(resource)(body).decode()


def record_ids(resource: str) -> Callable[[bytes | memoryview], bytes]:
    """:func:`record_id` of one resource's bodies, as header bytes (the router's per-record
    form: the resource's prefix encoded once, not per record)."""
    prefix, sha256 = resource.encode() + b"\0", hashlib.sha256

    def of(body: bytes | memoryview) -> bytes:
        return sha256(prefix + body).hexdigest()[:32].encode()

    return of


#: on a tombstone (a record with a key and no value): why the key is gone for its reader,
#: one of :data:`DELETED` (the provider deleted the record) or :data:`LEFT_VIEW` (an
#: update moved the record out of the reader's row filter)
DELETION = "gov-deletion"
DELETED = "deleted"
LEFT_VIEW = "left-view"
#: on a grant's retraction (a tombstone whose key is ``gov-retraction:<grant id>``): the
#: grant revoked or expired; ``gov-at-rest`` says what its holder does with the rows
#: it received under it (``delete`` or ``keep-frozen``), ``gov-retraction-reason`` why
RETRACTION = "gov-retraction"
AT_REST = "gov-at-rest"
RETRACTION_REASON = "gov-retraction-reason"
RETRACTION_KEY_PREFIX = b"gov-retraction:"


def deletion_id(resource: str, key: bytes, where: bytes) -> str:
    """A deletion's id: stable for one source tombstone (``where``: partition and offset).

    A re-routed tombstone keeps its id (readers drop the copy), and a key deleted,
    written again and deleted again gets a new one.
    """
    digest = hashlib.sha256(resource.encode() + b"\0deleted\0" + key + b"\0" + where)
    return digest.hexdigest()[:32]


def retraction_id(grant_id: str, topic: str, partition: int) -> str:
    """A retraction's id: one per grant and delivery partition."""
    text = f"{grant_id}\0{topic}\0{partition}".encode()
    return hashlib.sha256(b"retracted\0" + text).hexdigest()[:32]

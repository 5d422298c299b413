"""What every record on the bus carries besides its value: the headers and the record id.

``gov-record-id`` is stable: the same resource and the same Avro body always
give the same id, so a record published twice, or routed twice after a crash
(at-least-once), carries one id and readers drop the copy. ``gov-publisher``
names the department that published it.
"""

from __future__ import annotations

import hashlib

RECORD_ID = "gov-record-id"
PUBLISHER = "gov-publisher"


def record_id(resource: str, body: bytes | memoryview) -> str:
    """The record's id: the first 128 bits of SHA-256 over the resource and the Avro body."""
    return hashlib.sha256(resource.encode() + b"\0" + body).hexdigest()[:32]

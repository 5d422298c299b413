"""An audit entry's Avro binary written directly is byte for byte fastavro's, and its hash
computed at sealing is the one verification recomputes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.audit.entry import (
    AUDIT_CODEC,
    AUDIT_ENTRY,
    Action,
    AuditEntry,
    Draft,
    encode_sealed,
    seal_fields,
    to_millis,
)
from exchange.audit.entry_wire import EntryWriter
from exchange.avro import schema as avro
from exchange.avro import wire

_text = st.text(max_size=80)
_optional = st.none() | _text
_drafts = st.builds(
    Draft,
    action=st.sampled_from(list(Action)),
    actor=_text,
    decision=_text,
    resource=_optional,
    consumer=_optional,
    provider=_optional,
    reason=st.none() | st.text(max_size=1200),
    grant_id=_optional,
    application_id=_optional,
    purpose=_optional,
    details=st.dictionaries(_text, _text, max_size=6),
    at=st.none()
    | st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.just(dt.UTC),
    ),
)


def _fastavro(entry: AuditEntry) -> bytes:
    return wire.frame(AUDIT_CODEC.schema_id, wire.encode(avro.parse(AUDIT_ENTRY), entry.to_avro()))


@settings(max_examples=300, deadline=None)
@given(draft=_drafts, seq=st.integers(0, 2**62), writer=_text, instance=_text)
def test_an_entry_is_written_as_fastavro_writes_it_and_reads_back_intact(
    draft: Draft, seq: int, writer: str, instance: str
) -> None:
    entry = AuditEntry.seal(draft, writer=writer, seq=seq, prev_hash="ab" * 32, instance=instance)
    assert entry.encode() == _fastavro(entry)
    back = AuditEntry.decode(entry.encode())
    assert back == entry
    assert back.intact
    assert entry.hash == entry.rehashed().hash  # the hash sealing computed is verification's


@settings(max_examples=300, deadline=None)
@given(draft=_drafts, seq=st.integers(0, 2**62), writer=_text, instance=_text)
def test_an_entry_sealed_and_written_in_one_pass_is_the_entry_sealed_then_encoded(
    draft: Draft, seq: int, writer: str, instance: str
) -> None:
    """The writers' one pass (seal_fields, encode_sealed) gives the bytes of the entry
    object's path, read back intact, its hash the SHA-256 of the documented canonical JSON
    (json.dumps with sorted keys, compact, not ASCII-escaped: written out here, not taken
    from the module)."""
    fields = seal_fields(draft, writer=writer, seq=seq, prev_hash="cd" * 32, instance=instance)
    value = encode_sealed(fields)
    entry = AuditEntry.from_sealed(fields)
    assert value == _fastavro(entry) == entry.encode()
    back = AuditEntry.decode(value)
    assert back == entry
    assert back.intact
    if draft.at is not None:
        assert back == AuditEntry.seal(
            draft, writer=writer, seq=seq, prev_hash="cd" * 32, instance=instance
        )
    plain = back.to_avro()
    del plain["hash"]
    plain["at"] = to_millis(back.at)
    documented = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert back.hash == hashlib.sha256(documented.encode()).hexdigest()


def test_a_schema_with_a_type_it_does_not_write_is_refused() -> None:
    schema = {**AUDIT_ENTRY, "fields": [{"name": "n", "type": "double"}]}
    with pytest.raises(ValueError, match="'n' has a type this writer does not write"):
        EntryWriter(schema)

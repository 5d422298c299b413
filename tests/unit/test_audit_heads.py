"""Signed chain heads: forged chains, bad signatures, rewritten signed ranges, unsigned tails.

The writer is driven through a stand-in producer that records what it is handed
(no broker: the integration tests in ``test_audit_signed.py`` use a real one);
chains are altered the way someone with write access to ``gov.audit`` would.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import logging
from typing import Any

import pytest

from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain
from exchange.audit.heads import Head, HeadSigner
from exchange.audit.verify import Kind, Position, positioned, verify
from exchange.audit.writer import AuditWriter
from exchange.catalog import signing

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)


class _Producer:
    """Keeps what it is handed, in order; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.values.append(value)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class _Registry:
    async def register(self, producer: Any, schema: Any) -> int:
        return 1


def _draft(i: int) -> Draft:
    return Draft(
        Action.RECORDS_DELIVERED,
        actor="router",
        decision=Decision.DELIVERED,
        resource="birth_medical_certificate",
        consumer="police",
        details={"record_count": str(i)},
        at=T0 + dt.timedelta(seconds=i),
    )


def _signer(service: str = "gov-router-1", every: int = 10) -> tuple[HeadSigner, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return HeadSigner(service, key, every_entries=every, every_s=3600), signing.public_key_of(key)


async def _written(signer: HeadSigner | None, n: int, *, stop: bool = True) -> list[AuditEntry]:
    producer = _Producer()
    writer = AuditWriter(producer, _Registry(), role="router", instance="h-1", signer=signer)  # type: ignore[arg-type]
    for i in range(n):
        await writer.write(_draft(i))
    if stop:
        await writer.stop()
    return [AuditEntry.decode(v) for v in producer.values]


def _kinds(report: Any) -> list[Kind]:
    return [f.kind for f in report.findings]


async def test_a_signing_writer_signs_every_n_entries_and_at_stop() -> None:
    signer, public = _signer(every=10)
    entries = await _written(signer, 25)
    heads = [Head.of(e) for e in entries if e.action is Action.CHAIN_HEAD]
    # seqs 0-9, a head (seq 10) over 9; 11-20, a head over 20; 22-26, the stop's head over 26
    assert [h.seq for h in heads if h is not None] == [9, 20, 26]
    report = verify(positioned(entries), keys={"gov-router-1": public})
    assert not report.broken, report.findings
    assert report.heads is not None
    assert report.heads[0].unsigned_tail == 0
    assert report.heads[0].service == "gov-router-1"


async def test_a_clean_stop_leaves_no_unsigned_tail_but_a_running_writer_has_one() -> None:
    signer, public = _signer(every=10)
    entries = await _written(signer, 14, stop=False)
    report = verify(positioned(entries), keys={"gov-router-1": public})
    assert not report.broken
    tail = [f for f in report.findings if f.kind is Kind.UNSIGNED_TAIL]
    assert len(tail) == 1
    assert "(4 entries)" in tail[0].message
    assert tail[0].seq == 11


async def test_a_chain_forged_under_a_new_writer_id_with_valid_hashes_is_reported() -> None:
    signer, public = _signer()
    genuine = await _written(signer, 5)
    forged = chain([_draft(i) for i in range(3)], writer="router-h-1-beef00")
    report = verify(positioned([*genuine, *forged]), keys={"gov-router-1": public})
    assert report.broken
    problems = [(f.kind, f.writer) for f in report.problems]
    assert problems == [(Kind.FORGED, "router-h-1-beef00")]


async def test_a_head_signed_with_a_key_the_catalog_does_not_hold_is_refused() -> None:
    mine, public = _signer()
    theirs, _ = _signer()  # same service name, another key: an attacker's
    entries = await _written(theirs, 3)
    report = verify(positioned(entries), keys={"gov-router-1": public})
    kinds = _kinds(report)
    assert Kind.BAD_SIGNATURE in kinds
    assert Kind.FORGED in kinds
    unknown, _ = _signer("gov-router-9")
    report = verify(positioned(await _written(unknown, 2)), keys={"gov-router-1": public})
    assert any("does not register" in f.message for f in report.problems)
    del mine


async def test_an_edited_entry_inside_a_signed_range_is_reported_with_its_seq() -> None:
    signer, public = _signer(every=100)
    entries = await _written(signer, 8)  # seqs 0-7, head at seq 8 over seq 7
    keys = {"gov-router-1": public}
    # edited in place: its hash no longer matches
    edited = list(entries)
    edited[3] = dataclasses.replace(entries[3], consumer="hrss")
    report = verify(positioned(edited), keys=keys)
    assert [(f.kind, f.seq) for f in report.problems] == [(Kind.MODIFIED, 3)]
    # edited and the whole chain re-hashed from there: the signed head no longer matches
    rewritten = list(entries[:3])
    prev = entries[2].hash
    for e in entries[3:8]:
        e2 = dataclasses.replace(e, prev_hash=prev, consumer="hrss").rehashed()
        rewritten.append(e2)
        prev = e2.hash
    rewritten.append(dataclasses.replace(entries[8], prev_hash=prev).rehashed())
    report = verify(positioned(rewritten), keys=keys)
    assert [(f.kind, f.seq) for f in report.problems] == [(Kind.HEAD_MISMATCH, 7)]


async def test_heads_going_backwards_are_reported() -> None:
    signer, public = _signer(every=3)
    entries = await _written(signer, 6)  # heads at seq 3 (over 2) and seq 7 (over 6)
    head_positions = [i for i, e in enumerate(entries) if e.action is Action.CHAIN_HEAD]
    first, second = head_positions[0], head_positions[1]
    moved = [e for i, e in enumerate(entries) if i != first]
    moved.insert(second, entries[first])  # the older head replayed after the newer one
    report = verify(positioned(moved), keys={"gov-router-1": public})
    assert Kind.HEAD_BACKWARDS in _kinds(report)


async def test_without_registered_keys_an_unsigned_chain_is_a_notice_not_a_break() -> None:
    entries = await _written(None, 3)
    report = verify(positioned(entries), keys={})
    assert not report.broken
    assert _kinds(report) == [Kind.UNSIGNED]
    assert verify(positioned(entries)).findings == []  # heads not checked at all


async def test_the_signing_key_is_never_in_a_repr_or_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cryptography.hazmat.primitives import serialization

    signer, _ = _signer(every=2)
    raw = signer.key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    secrets = [base64.b64encode(raw).decode(), raw.hex(), "PRIVATE KEY"]
    caplog.set_level(logging.DEBUG)
    entries = await _written(signer, 5)
    shown = repr(signer) + caplog.text + "".join(repr(e) for e in entries)
    assert "gov-router-1" in repr(signer)
    for secret in secrets:
        assert secret not in shown
    assert all(str(p) for p in [Position(0, 1)])


async def test_chains_ended_before_services_were_registered_are_a_notice_not_forged() -> None:
    signer, public = _signer()
    legacy = chain([_draft(i) for i in range(3)], writer="router-old-1-000001")
    registered = chain(
        [
            Draft(
                Action.CATALOG_CHANGED,
                actor="admin",
                decision=Decision.CHANGED,
                details={"services_changed": "gov-router-1", "version": "2"},
            )
        ],
        writer="admin-h-1-000002",
    )
    later = chain([_draft(i) for i in range(2)], writer="router-new-1-000003")
    genuine = await _written(signer, 3)
    log = [*legacy, *registered, *genuine, *later]
    report = verify(positioned(log), keys={"gov-router-1": public})
    by_writer = {f.writer: f.kind for f in report.findings}
    assert by_writer["router-old-1-000001"] is Kind.UNSIGNED  # before anyone could sign
    assert by_writer["router-new-1-000003"] is Kind.FORGED
    assert by_writer["admin-h-1-000002"] is Kind.FORGED  # the load itself was not signed
    # appended later, a claim that services were registered moves nothing earlier
    again = verify(positioned([*log, *registered]), keys={"gov-router-1": public})
    assert {f.writer: f.kind for f in again.findings}["router-new-1-000003"] is Kind.FORGED


def test_a_signer_the_catalog_does_not_register_is_refused_before_it_signs() -> None:
    from exchange.catalog.signing import SigningError

    signer, public = _signer()
    signer.check_registered({"gov-router-1": public})
    _, other = _signer()
    with pytest.raises(SigningError, match="not the one the catalog registers"):
        signer.check_registered({"gov-router-1": other})
    with pytest.raises(SigningError, match=r"not in the catalog's services\.yaml"):
        signer.check_registered({})

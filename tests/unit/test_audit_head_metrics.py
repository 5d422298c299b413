"""The unsigned-tail metrics: what ``GovExchangeAuditTailUnsigned`` (deploy/prometheus) reads.

``gov_exchange_audit_unsigned_entries`` and ``..._unsigned_seconds`` are read
from the writers at each scrape: near 0 for a writer that signs its heads,
growing for one that does not. The writer is driven through the stand-in
producer of ``test_audit_heads``.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from test_audit_heads import _draft, _Producer, _Registry, _signer

from exchange.audit.heads import HeadSigner
from exchange.audit.writer import AuditWriter
from exchange.metrics import AuditMetrics


def _sample(registry: CollectorRegistry, name: str, role: str) -> float | None:
    value = registry.get_sample_value(f"gov_exchange_audit_{name}", {"role": role})
    return value


async def _writer(metrics: AuditMetrics, signer: HeadSigner | None, role: str) -> AuditWriter:
    writer = AuditWriter(
        _Producer(),
        _Registry(),  # type: ignore[arg-type]
        role=role,
        instance="h-1",
        signer=signer,
        metrics=metrics,
    )
    await writer.start()
    return writer


async def test_a_writer_without_a_signer_shows_a_growing_unsigned_tail() -> None:
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    writer = await _writer(metrics, None, "router")
    assert _sample(registry, "unsigned_entries", "router") == 0
    assert _sample(registry, "unsigned_seconds", "router") == 0
    for i in range(3):
        await writer.write(_draft(i))
    await asyncio.sleep(0.05)
    assert _sample(registry, "unsigned_entries", "router") == 3
    waited = _sample(registry, "unsigned_seconds", "router")
    assert waited is not None
    assert 0.04 <= waited < 5
    await writer.stop()
    text = generate_latest(registry).decode()
    assert 'gov_exchange_audit_unsigned_entries{role="router"} 0.0' in text  # forgotten


async def test_a_signing_writer_is_back_to_zero_after_each_head() -> None:
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    signer, _ = _signer(every=4)
    writer = await _writer(metrics, signer, "gateway")
    for i in range(6):  # a head after entry 3 (seq 4); seqs 5 and 6 wait for the next
        await writer.write(_draft(i))
    assert _sample(registry, "unsigned_entries", "gateway") == 2
    assert (_sample(registry, "unsigned_seconds", "gateway") or 0) > 0
    for i in range(2):  # two more: 4 unsigned, a head
        await writer.write(_draft(i))
    assert _sample(registry, "unsigned_entries", "gateway") == 0
    assert _sample(registry, "unsigned_seconds", "gateway") == 0
    await writer.stop()


async def test_an_idle_writer_is_signed_on_time() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    signer = HeadSigner("gov-router-1", Ed25519PrivateKey.generate(), every_s=0.1)
    writer = await _writer(metrics, signer, "router")
    await writer.write(_draft(0))
    for _ in range(250):  # the timer ticks every every_s / 2
        if not _sample(registry, "unsigned_entries", "router"):
            break
        await asyncio.sleep(0.02)
    assert _sample(registry, "unsigned_entries", "router") == 0
    assert _sample(registry, "unsigned_seconds", "router") == 0
    await writer.stop()


async def test_chains_of_one_role_add_up_and_the_oldest_wait_counts() -> None:
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    first = await _writer(metrics, None, "department")
    await first.write(_draft(0))
    await asyncio.sleep(0.05)
    second = await _writer(metrics, None, "department")
    await second.write(_draft(1), _draft(2))
    assert _sample(registry, "unsigned_entries", "department") == 3
    assert first.unsigned_seconds() > second.unsigned_seconds()
    assert (_sample(registry, "unsigned_seconds", "department") or 0) >= 0.05
    await first.stop()
    assert _sample(registry, "unsigned_entries", "department") == 2
    await second.stop()

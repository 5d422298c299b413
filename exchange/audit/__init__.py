"""The access log for auditors (``gov.audit``): who received which data, who was refused.

===============  ===============================================================
``entry``        the Avro-typed :class:`AuditEntry`, its actions and its hash
``writer``       :class:`AuditWriter`: one hash chain per process, acked writes
``verify``       :class:`ChainChecker`: modified, inserted, deleted, reordered
``finding``      what a check finds, and where
``heads``        signed chain heads: the service identity's signer, the head entries
``head_check``   forged chains, bad signatures, heads rewritten or going backwards
``truncation``   what the archive holds and the topic lost
``key_hash``     keyed hashes of delivered records' keys, in delivery entries
``trace``        who received the records with a key; what a department received
``retention``    the archive by month: pruning only what is old, verified and signed
``log``          reading ``gov.audit`` from Kafka
``query``        filters, paging and output formats over entries
``archive``      the archive database: idempotent, resumable, indexed
``backends``     its SQLite and PostgreSQL implementations
``archiver``     following ``gov.audit`` into an archive, resuming where it stopped
``report``       the monthly report per department
===============  ===============================================================
"""

from __future__ import annotations

from exchange.audit.entry import AUDIT_CODEC, AUDIT_ENTRY, GENESIS_HASH, Action, AuditEntry, Draft
from exchange.audit.writer import AuditWriter

__all__ = [
    "AUDIT_CODEC",
    "AUDIT_ENTRY",
    "GENESIS_HASH",
    "Action",
    "AuditEntry",
    "AuditWriter",
    "Draft",
]

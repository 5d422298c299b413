"""Corrected records (疑义校核) on their way through the router.

A provider publishes the corrected record of a dispute with the
``gov-corrects`` header naming the dispute (:mod:`exchange.clients.disputes`).
The router routes it as any update, so every consumer whose view the record
belongs to gets its own view of it (filtered and masked as always), and the
header travels on with it so the consumer knows what it corrects. Each
delivery of a correction to a consumer is one ``CORRECTION_DELIVERED`` entry:
dispute id, record id and the fields of the view, never a value.

Only the provider writes its source topic (ACLs), so the header is its own
claim; a value that is not a dispute id is dropped, not forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.catalog.model import Resource
from exchange.router.view import CompiledView
from exchange.sharing.dispute_records import CORRECTS_HEADER, DISPUTE_ID

_NAME = CORRECTS_HEADER


def correction_of(headers: Iterable[tuple[str, bytes]] | None) -> bytes | None:
    """The dispute id a source record corrects (its ``gov-corrects`` header), if valid."""
    if not headers:
        return None
    for name, value in headers:
        if name == _NAME:
            try:
                text = value.decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                return None
            return value if DISPUTE_ID.match(text) else None
    return None


def delivered_drafts(
    res: Resource, targets: list[tuple[CompiledView, Any]], noted: list[tuple[int, bytes, bytes]]
) -> list[Draft]:
    """One ``CORRECTION_DELIVERED`` entry per (view, corrected record) delivered."""
    drafts = []
    for index, dispute_id, rid in noted:
        view = targets[index][0]
        v = view.view
        drafts.append(
            Draft(
                Action.CORRECTION_DELIVERED,
                actor="router",
                decision=Decision.DELIVERED,
                resource=res.id,
                consumer=v.consumer,
                provider=res.provider,
                grant_id=v.grant_id,
                purpose=v.purpose,
                details=detail_map(
                    dispute_id=dispute_id.decode("ascii"),
                    record_id=rid.decode("ascii"),
                    delivery_topic=view.topic,
                    fields=v.fields,
                ),
            )
        )
    return drafts

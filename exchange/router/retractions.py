"""A grant revoked or expired: its consumer is told to stop acting on what it received.

When a recompile drops a consumer's view whose grant was revoked or has expired
(or replaces it with a view without that grant), the router sends a
**retraction** to the consumer's delivery topic: a tombstone whose key is
``gov-retraction:<grant id>``, with the headers ``gov-retraction`` (the grant
id), ``gov-at-rest`` (the approval's rule for the rows the consumer holds:
``delete`` or ``keep-frozen``) and ``gov-retraction-reason`` (``revoked`` or
``expired``). A consumer reading with :class:`~exchange.clients.reader.Reader`
gets a :class:`~exchange.clients.reader.Retraction`; the database sink deletes
the rows, or keeps them frozen and marked, as the rule says. A plain Kafka
consumer sees a tombstone of a key it never held: harmless.

One retraction goes to each delivery partition the router feeds (the source
partitions it holds, modulo the topic's partition count), behind every record
it delivered there, so a reader that applies it per partition never keeps a
row that came before it. Several routers in a group each send to their own
partitions. Each retraction is audited (``GRANT_RETRACTED``, once per grant and
router). A retraction is noticed by the router that runs when the grant ends:
a grant that ended while no router ran is not retracted later (the README says so).

Public surface: :class:`Retractions` (``noticed``, ``pending``, ``emit``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.bus import topics
from exchange.bus.envelope import (
    AT_REST,
    RECORD_ID,
    RETRACTION,
    RETRACTION_KEY_PREFIX,
    RETRACTION_REASON,
    retraction_id,
)
from exchange.bus.outbox import Outbox
from exchange.router.view import CompiledView
from exchange.sharing.grants import GrantBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retraction:
    """One grant to retract from its consumer's delivery topic."""

    grant_id: str
    resource: str
    provider: str
    consumer: str
    topic: str
    at_rest: str
    reason: str  # revoked or expired
    purpose: str | None


class Retractions:
    """Grants whose views were dropped, waiting to be sent with the next batch."""

    def __init__(self, audit: Callable[[Draft], None]) -> None:
        self.audit = audit
        self.pending: list[Retraction] = []

    def noticed(
        self,
        before: dict[str, list[CompiledView]],
        after: dict[str, list[CompiledView]],
        book: GrantBook,
        now: dt.datetime,
        provider_of: Callable[[str], str],
    ) -> list[Retraction]:
        """Compare the views before and after a recompile: retract each grant that ended."""
        found = []
        for res_id, views in before.items():
            kept = {(v.consumer, v.view.grant_id) for v in after.get(res_id, [])}
            for v in views:
                gid = v.view.grant_id
                if gid is None or (v.consumer, gid) in kept:
                    continue
                grant = book.grants.get(gid)
                status = grant.status(now) if grant is not None else "revoked"
                if status not in ("revoked", "expired"):
                    continue  # superseded by a new approval: its view carries on
                found.append(
                    Retraction(
                        grant_id=gid,
                        resource=res_id,
                        provider=provider_of(res_id),
                        consumer=v.consumer,
                        topic=topics.delivery(v.consumer, res_id),
                        at_rest=grant.at_rest.value if grant is not None else "delete",
                        reason=status,
                        purpose=v.view.purpose,
                    )
                )
        self.pending.extend(found)
        return found

    async def emit(
        self,
        outbox: Outbox,
        held: set[Any],
        partition_of: Callable[[str, int], Any],
    ) -> None:
        """Append every pending retraction to ``outbox`` (before the batch's records).

        ``held``: the source partitions this router holds; ``partition_of(topic, source
        partition)`` awaits the delivery partition a source partition feeds.
        """
        pending, self.pending = self.pending, []
        for r in pending:
            source = topics.source(r.provider, r.resource)
            parts = sorted(
                {await partition_of(r.topic, tp.partition) for tp in held if tp.topic == source}
            )
            for partition in parts:
                headers = [
                    (RECORD_ID, retraction_id(r.grant_id, r.topic, partition).encode()),
                    (RETRACTION, r.grant_id.encode()),
                    (AT_REST, r.at_rest.encode()),
                    (RETRACTION_REASON, r.reason.encode()),
                ]
                outbox.add(
                    r.topic, partition, RETRACTION_KEY_PREFIX + r.grant_id.encode(), None, headers
                )
            log.info(
                "grant %s (%s) of %s for %s: retraction sent to partitions %s of %s",
                r.grant_id,
                r.reason,
                r.resource,
                r.consumer,
                parts or "none (no source partition held here)",
                r.topic,
            )
            if parts:
                self.audit(_draft(r, parts))


def _draft(r: Retraction, partitions: list[int]) -> Draft:
    return Draft(
        Action.GRANT_RETRACTED,
        actor="router",
        decision=Decision.RETRACTED,
        resource=r.resource,
        consumer=r.consumer,
        provider=r.provider,
        grant_id=r.grant_id,
        purpose=r.purpose,
        reason=f"grant {r.reason}: rows at rest are to be handled as '{r.at_rest}'",
        details=detail_map(
            delivery_topic=r.topic,
            partitions=[str(p) for p in partitions],
            at_rest=r.at_rest,
            grant_status=r.reason,
        ),
    )

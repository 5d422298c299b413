"""Deletions (删除) travel: a provider's tombstone, and a record leaving a view, per consumer.

A provider deletes a record by writing a tombstone (its key, no value) on its
source topic. The router turns it into a tombstone on the delivery topic of
every consumer whose view holds that key, keyed as that view keys the record
(the source key, or the view's keyed hash of it), with the header
``gov-deletion: deleted``. An update that moves a record out of a consumer's
row filter is a deletion for that consumer only: a tombstone with
``gov-deletion: left-view``.

**Which consumers held a key.** A view without a row filter holds every key of
the resource, so it always gets the deletion. A view with a row filter holds
only the keys whose latest record matched it (:mod:`exchange.router.membership`,
established from the source's current state when the router takes a partition:
:mod:`exchange.router.membership_rebuild`). The deletion of a key it does not
hold reaches such a view only when the view hashes the key (the tombstone then
tells the consumer nothing it could read a key from); a view that delivers the
key in clear never receives a key it was not entitled to see.

**A grant that narrows** (a new approval with a tighter row filter supersedes the
grant, or the filter changes otherwise) is a deletion too, for the keys the
consumer holds whose current record the new view rejects: the backfill that
follows the change (:mod:`exchange.router.backfill`) reads each key's latest
record under the new view, and for a key the view rejects and the consumer
holds it sends a tombstone with ``gov-deletion: left-view`` (what the consumer
does is the same as for a record that left the filter by an update), audited
as ``RECORD_LEFT_VIEW`` with ``kind=narrowed``.

Every tombstone is audited per consumer and per source partition of a batch
(``RECORD_DELETED``, ``RECORD_LEFT_VIEW``): counts, offsets and the keyed hashes
of the keys, never a value.

Public surface: :func:`reaches`, :func:`tombstone_headers`, :func:`deletion_draft`.
"""

from __future__ import annotations

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.key_hash import KEY_HASHES
from exchange.bus.envelope import DELETION, RECORD_ID, deletion_id
from exchange.catalog.model import Resource
from exchange.router.dead_letters import SOURCE_OFFSET
from exchange.router.view import CompiledView


def reaches(view: CompiledView, members: set[bytes] | None, key: bytes) -> bool:
    """Whether the provider's deletion of ``key`` goes to ``view`` (and forget the key)."""
    if members is None:
        return True  # no row filter: the view holds every key
    if key in members:
        members.discard(key)
        return True
    # a key it does not hold (never did, or left it): a hashed key reveals nothing
    return view.key_hash is not None


def tombstone_headers(
    resource: str, key: bytes, where: bytes, offset: int, why: str
) -> list[tuple[str, bytes]]:
    """Headers of a delivered tombstone: its id, the source offset and why the key is gone."""
    position = where + str(offset).encode()
    return [
        (RECORD_ID, deletion_id(resource, key, position).encode()),
        (SOURCE_OFFSET, position),
        (DELETION, why.encode()),
    ]


def deletion_draft(
    action: Action,
    res: Resource,
    view: CompiledView,
    where: tuple[str, int, str],
    count: int,
    key_hashes: str,
    *,
    backfill: str | None = None,
) -> Draft:
    """One RECORD_DELETED / RECORD_LEFT_VIEW entry for one consumer: counts, no values.

    ``where``: (source topic, partition, source offsets ``first-last``); ``backfill``: the
    id of the backfill that found the records leaving a narrowed view (``kind=narrowed``).
    """
    v = view.view
    topic, partition, offsets = where
    details = detail_map(
        record_count=count,
        partition=partition,
        offsets=offsets,
        source_topic=topic,
        delivery_topic=view.topic,
        row_filter=v.row_filter,
        kind="narrowed" if backfill else None,
        backfill=backfill,
    )
    details[KEY_HASHES] = key_hashes
    if action is Action.RECORD_DELETED:
        reason = "the provider deleted the records"
    elif backfill:
        reason = "records the consumer held are outside its view now (the row filter narrowed)"
    else:
        reason = "updated records no longer match the grant's row filter"
    return Draft(
        action,
        actor="router",
        decision=Decision.DELETED,
        resource=res.id,
        consumer=v.consumer,
        provider=res.provider,
        grant_id=v.grant_id,
        purpose=v.purpose,
        reason=reason,
        details=details,
    )

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
only the keys whose latest record matched it: :class:`Membership` keeps those
keys, learnt from the records this router delivered (live or by backfill).
The deletion of a key it does not know reaches such a view only when the view
hashes the key (the tombstone then tells the consumer nothing it could read
a key from); a view that delivers the key in clear never receives a key it
was not entitled to see. Membership lives in the router's memory: after a
restart it is learnt again as records are routed, so until then a record
leaving a filter is not deleted for a consumer that got it before the restart
(the README says so).

Every tombstone is audited per consumer and per source partition of a batch
(``RECORD_DELETED``, ``RECORD_LEFT_VIEW``): counts, offsets and the keyed hashes
of the keys, never a value.

Public surface: :class:`Membership`, :func:`tombstone_headers`,
:func:`deletion_draft`.
"""

from __future__ import annotations

from typing import Any

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.key_hash import KEY_HASHES
from exchange.bus.envelope import DELETION, RECORD_ID, deletion_id
from exchange.catalog.model import Resource
from exchange.router.dead_letters import SOURCE_OFFSET
from exchange.router.view import CompiledView


class Membership:
    """The source keys each row-filtered view holds now, by (resource, consumer)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], set[bytes]] = {}

    def of(self, view: CompiledView) -> set[bytes] | None:
        """The keys ``view`` holds, or None when it has no row filter (it holds them all)."""
        if view.row_filter is None:
            return None
        where = (view.view.resource, view.consumer)
        keys = self._keys.get(where)
        if keys is None:
            keys = self._keys[where] = set()
        return keys

    def forget(self, resource: str, consumer: str) -> None:
        """The consumer's view of ``resource`` is gone: it holds nothing any more."""
        self._keys.pop((resource, consumer), None)

    def size(self) -> int:
        """Keys held, over every view (for the operator: memory grows with it)."""
        return sum(len(keys) for keys in self._keys.values())


def reaches(view: CompiledView, members: set[bytes] | None, key: bytes) -> bool:
    """Whether the provider's deletion of ``key`` goes to ``view`` (and forget the key)."""
    if members is None:
        return True  # no row filter: the view holds every key
    if key in members:
        members.discard(key)
        return True
    # unknown here (delivered before a restart, or never): a hashed key reveals nothing
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
    records: list[Any],
    count: int,
    key_hashes: str,
) -> Draft:
    """One RECORD_DELETED / RECORD_LEFT_VIEW entry for one consumer: counts, no values."""
    v = view.view
    details = detail_map(
        record_count=count,
        partition=records[0].partition,
        offsets=f"{records[0].offset}-{records[-1].offset}",
        source_topic=records[0].topic,
        delivery_topic=view.topic,
        row_filter=v.row_filter,
    )
    details[KEY_HASHES] = key_hashes
    return Draft(
        action,
        actor="router",
        decision=Decision.DELETED,
        resource=res.id,
        consumer=v.consumer,
        provider=res.provider,
        grant_id=v.grant_id,
        purpose=v.purpose,
        reason=(
            "the provider deleted the records"
            if action is Action.RECORD_DELETED
            else "updated records no longer match the grant's row filter"
        ),
        details=details,
    )

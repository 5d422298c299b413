"""Which keys a consumer's row-filtered view holds, per source partition (成员).

A view without a row filter holds every key of its resource. A view with one
holds only the keys whose latest record passed it: a provider's deletion of a
key it never held must not reach it when it receives keys in clear (the
tombstone would reveal that the key exists), and a record that stops passing
the filter is a deletion for it only if it held the key
(:mod:`exchange.router.deletions`).

:class:`Membership` keeps those keys per (resource, consumer, source
partition), learnt from what this router delivers (live and by backfill).
A partition's keys are *known* only once the router has established them
for the partition it holds: when it takes a partition (a start, a
rebalance) or a view gains a row filter, :mod:`exchange.router.membership_rebuild`
reads them from the source's current state first, and routing of that
partition waits until it has (:meth:`Membership.known`). A partition the
router gives up is forgotten, so taking it again rebuilds it.

Public surface: :class:`Membership`.
"""

from __future__ import annotations

from collections.abc import Iterable

from exchange.router.view import CompiledView

#: (resource, consumer, source partition)
Where = tuple[str, str, int]


class Membership:
    """The source keys each row-filtered view holds now, by (resource, consumer, partition)."""

    def __init__(self) -> None:
        self._keys: dict[Where, set[bytes]] = {}

    def of(self, view: CompiledView, partition: int) -> set[bytes] | None:
        """The keys ``view`` holds from source partition ``partition``, or None when it has no
        row filter (it holds them all). A partition not known yet starts empty: the
        router establishes it (:meth:`known`) before it routes the partition."""
        if view.row_filter is None:
            return None
        where = (view.view.resource, view.consumer, partition)
        keys = self._keys.get(where)
        if keys is None:
            keys = self._keys[where] = set()
        return keys

    def known(self, resource: str, consumer: str, partition: int) -> bool:
        """True once the keys of (``resource``, ``consumer``, ``partition``) are established."""
        return (resource, consumer, partition) in self._keys

    def establish(self, resource: str, consumer: str, partition: int, keys: set[bytes]) -> None:
        """The keys the consumer holds from ``partition``, as a rebuild found them."""
        self._keys[(resource, consumer, partition)] = keys

    def forget(self, resource: str, consumer: str) -> None:
        """The consumer's view of ``resource`` is gone: it holds nothing any more."""
        for where in [w for w in self._keys if w[:2] == (resource, consumer)]:
            del self._keys[where]

    def keep_partitions(self, held: Iterable[tuple[str, int]]) -> None:
        """Forget the partitions not ``held`` ((resource, partition)) any more: another
        router routes them now, and taking one back establishes its keys again."""
        keep = set(held)
        for where in [w for w in self._keys if (w[0], w[2]) not in keep]:
            del self._keys[where]

    def keep_views(self, filtered: set[tuple[str, str]]) -> None:
        """Forget the views that are not ``filtered`` ((resource, consumer)) any more: gone,
        or without a row filter now (then every key is theirs; a filter again rebuilds)."""
        for where in [w for w in self._keys if w[:2] not in filtered]:
            del self._keys[where]

    def size(self) -> int:
        """Keys held, over every view (for the operator: memory grows with it)."""
        return sum(len(keys) for keys in self._keys.values())

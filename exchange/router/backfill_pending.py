"""What a backfill still has to deliver from one source partition: each key's latest record.

A backfill of 1,000,000 keys holds 1,000,000 entries here while it runs, in the
router's process. Kept as one dict of key -> (offset, view bytes, record id)
tuples, every full garbage collection of the router walked all of them (the
dict holds tuples, which the collector tracks): 50-110 ms pauses every few
seconds during a 1,000,000-key backfill, measured, each one holding every
consumer's live records. :class:`Pending` keeps the same entries in three plain
dicts of keys to ints and bytes instead: a dict holding only such values is not
tracked by the collector at all, so no collection walks it.

The three dicts are always changed together, so they hold the same keys in the
same order (source-offset order: a key set again goes to the end). Delivering
takes keys off the front; a dict leaves a hole per key taken, which iteration
steps over, so once as many keys were taken as are left the dicts are copied
without their holes (each copy costs no more than the keys taken since the
last one).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

#: (source offset, the view's framed bytes or None if the view filters it out, record id)
Entry = tuple[int, bytes | None, bytes]
#: keys taken before the dicts are copied without their holes, at least
COMPACT_MIN = 10_000


class Pending:
    """key -> :data:`Entry`, in the order set; read like a dict (``items``, ``values``,
    ``pop``, ``in``, ``len``, iteration over the keys)."""

    __slots__ = ("_taken", "offsets", "outs", "rids")

    def __init__(self) -> None:
        #: the same keys, in the same order, in each (used directly where it counts)
        self.offsets: dict[bytes, int] = {}
        self.outs: dict[bytes, bytes | None] = {}
        self.rids: dict[bytes, bytes] = {}
        self._taken = 0  # keys taken since the dicts were last copied

    def __setitem__(self, key: bytes, entry: Entry) -> None:
        """Set ``key`` (at the end, if it is new)."""
        self.offsets[key], self.outs[key], self.rids[key] = entry

    def pop(self, key: bytes, default: Entry | None = None) -> Entry | None:
        offset = self.offsets.pop(key, None)
        if offset is None:
            return default
        self._taken += 1
        return offset, self.outs.pop(key), self.rids.pop(key)

    def take(self, keys: Iterable[bytes]) -> None:
        """Remove ``keys`` (the ones there), then leave the holes behind if due."""
        offsets, outs, rids = self.offsets, self.outs, self.rids
        for key in keys:
            if offsets.pop(key, None) is not None:
                del outs[key], rids[key]
                self._taken += 1
        self.compact()

    def took(self, count: int) -> None:
        """``count`` keys were taken off the dicts directly; leave the holes behind if due."""
        self._taken += count
        self.compact()

    def compact(self) -> None:
        """Copy the dicts without their holes once as many keys were taken as are left."""
        if self._taken >= COMPACT_MIN and self._taken >= len(self.offsets):
            self.offsets, self.outs, self.rids = (
                dict(self.offsets),
                dict(self.outs),
                dict(self.rids),
            )
            self._taken = 0

    def items(self) -> Iterator[tuple[bytes, Entry]]:
        """(key, entry) in order."""
        for (key, offset), out, rid in zip(
            self.offsets.items(), self.outs.values(), self.rids.values(), strict=True
        ):
            yield key, (offset, out, rid)

    def first(self, count: int) -> Iterator[tuple[bytes, int, bytes | None, bytes]]:
        """(key, offset, view bytes, record id) of the first ``count`` keys, in order."""
        firsts = itertools.islice(self.offsets.items(), count)
        outs, rids = self.outs.values(), self.rids.values()
        for (key, offset), out, rid in zip(firsts, outs, rids, strict=False):  # to ``count``
            yield key, offset, out, rid

    def values(self) -> Iterator[Entry]:
        return zip(self.offsets.values(), self.outs.values(), self.rids.values(), strict=True)

    def __contains__(self, key: object) -> bool:
        return key in self.offsets

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets)

    def __bool__(self) -> bool:
        return bool(self.offsets)

"""The pending keys of a backfill: dict order and semantics, holes left behind, never walked
by the garbage collector."""

from __future__ import annotations

import gc

import pytest

from exchange.router import backfill_pending
from exchange.router.backfill_pending import Pending


def test_reads_like_an_ordered_dict_and_a_key_set_again_goes_to_the_end() -> None:
    p = Pending()
    p[b"a"] = (0, b"A0", b"ra")
    p[b"b"] = (1, None, b"rb")
    p[b"c"] = (2, b"C2", b"rc")
    assert p.pop(b"a") == (0, b"A0", b"ra")
    p[b"a"] = (3, b"A3", b"ra")
    assert list(p) == [b"b", b"c", b"a"]
    assert list(p.items()) == [
        (b"b", (1, None, b"rb")),
        (b"c", (2, b"C2", b"rc")),
        (b"a", (3, b"A3", b"ra")),
    ]
    assert next(iter(p.values())) == (1, None, b"rb")
    assert list(p.first(2)) == [(b"b", 1, None, b"rb"), (b"c", 2, b"C2", b"rc")]
    assert p.pop(b"zz") is None
    assert b"c" in p
    assert b"zz" not in p
    p.take([b"b", b"zz"])
    assert list(p) == [b"c", b"a"]
    assert len(p) == 2


def test_holes_left_by_keys_taken_are_dropped_without_changing_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backfill_pending, "COMPACT_MIN", 4)
    p = Pending()
    for i in range(10):
        p[b"%d" % i] = (i, b"v", b"r")
    offsets = p.offsets
    p.take([b"0", b"1", b"2"])
    assert p.offsets is offsets  # 3 taken: under the minimum
    p.take([b"3", b"4", b"5"])  # 6 taken, 4 left: copied
    assert p.offsets is not offsets
    assert list(p.first(10)) == [(b"%d" % i, i, b"v", b"r") for i in range(6, 10)]
    p[b"0"] = (10, None, b"r")
    assert [k for k, _ in p.items()] == [b"6", b"7", b"8", b"9", b"0"]


def test_the_garbage_collector_does_not_track_what_it_holds() -> None:
    p = Pending()
    for i in range(1000):
        p[b"k%d" % i] = (i, b"x" * 100 if i % 3 else None, b"rid")
    p.take([b"k1", b"k2"])
    assert not any(gc.is_tracked(d) for d in (p.offsets, p.outs, p.rids))

"""The gateway's latest-state store (SQLite): the newest value per key, and its figures."""

from __future__ import annotations

from pathlib import Path

from exchange.gateway.store import Change, LatestStore

TOPIC = "gov.src.police.population_basic"


def test_the_figures_count_the_records_held_and_every_record_written(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = LatestStore(path)
    assert store.stats() == (0, 0)
    store.apply(
        [
            Change(TOPIC, 0, 0, b"a", b"1"),
            Change(TOPIC, 0, 1, b"b", b"2"),
            Change(TOPIC, 0, 2, b"a", b"3"),  # a newer value of a: still one record
        ]
    )
    assert store.stats() == (2, 3)
    store.apply([Change(TOPIC, 0, 3, b"b", None)])  # a tombstone deletes b
    assert store.stats() == (1, 4)
    assert store.get(TOPIC, b"a") == b"3"
    store.close()
    reader = LatestStore(path, reader=True)  # a worker's view of the same file
    assert reader.stats() == (1, 4)
    reader.close()
    again = LatestStore(path)  # reopened by its writer: the count goes on
    again.apply([Change(TOPIC, 0, 4, b"c", b"5")])
    assert again.stats() == (2, 5)
    again.close()
    path.write_bytes(b"damaged" * 100)
    rebuilt = LatestStore(path)
    assert rebuilt.rebuilt
    assert rebuilt.stats() == (0, 0)
    rebuilt.close()

"""Query filters over entries, and the SQLite archive (idempotent, resumable, faithful)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.audit.archive import Archive
from exchange.audit.archive_url import open_archive, sqlite_path
from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain, detail_map
from exchange.audit.query import Filter, parse_action, parse_time, render, select, table_rows
from exchange.audit.verify import Kind, Position, verify
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.errors import ExchangeError

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
TOPIC = "gov.audit"


def sample() -> list[AuditEntry]:
    depts = ["police", "hrss", "civil_affairs"]
    drafts = []
    for i in range(30):
        consumer = depts[i % 3]
        action = Action.RECORDS_DELIVERED if i % 5 else Action.SUBSCRIPTION_DENIED
        drafts.append(
            Draft(
                action,
                actor="router" if i % 5 else consumer,
                decision=Decision.DELIVERED if i % 5 else Decision.DENIED,
                resource="res_a" if i % 2 else "res_b",
                consumer=consumer,
                provider="health",
                grant_id=f"GR-{i % 4}" if i % 5 else None,
                purpose="新生儿落户 100% registration" if i % 3 == 0 else "统计_stats",
                reason=None if i % 5 else "not shared",
                details=detail_map(record_count=i),
                at=T0 + dt.timedelta(minutes=i),
            )
        )
    return chain(drafts, writer="router-x")


def positioned_log(entries: list[AuditEntry]) -> list[tuple[Position, AuditEntry]]:
    return [(Position(0, i), e) for i, e in enumerate(entries)]


FILTERS = [
    Filter(),
    Filter(dept="police"),
    Filter(dept="health"),
    Filter(resource="res_a"),
    Filter(action=Action.SUBSCRIPTION_DENIED),
    Filter(decision="delivered", resource="res_b"),
    Filter(grant="GR-1"),
    Filter(purpose="100%"),  # LIKE wildcards are matched literally
    Filter(purpose="_stats"),
    Filter(since=T0 + dt.timedelta(minutes=10), until=T0 + dt.timedelta(minutes=20)),
]


def test_select_is_newest_first_and_paged() -> None:
    items = positioned_log(sample())
    page = select(items, Filter(dept="police"), limit=3, offset=1)
    everything = select(items, Filter(dept="police"))
    assert page == everything[1:4]
    assert [e.at for e in everything] == sorted((e.at for e in everything), reverse=True)
    assert all(e.involves("police") for e in everything)


def test_parse_helpers() -> None:
    assert parse_action("records_delivered") is Action.RECORDS_DELIVERED
    with pytest.raises(ExchangeError, match="unknown action"):
        parse_action("NOPE")
    assert parse_time("2026-11-02") == dt.datetime(2026, 11, 2, tzinfo=CHINA_TZ)
    assert parse_time("2026-11-02", end=True) == dt.datetime(2026, 11, 3, tzinfo=CHINA_TZ)


def test_render_formats() -> None:
    entries = sample()[:2]
    assert render(entries, "json").startswith("[")
    assert render(entries, "csv").splitlines()[0].startswith("id,writer,seq,at,action")
    headers, rows = table_rows(entries)
    assert len(rows) == 2
    assert headers[0] == "at"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Archive]:
    archive = open_archive(str(tmp_path / "audit.sqlite"))
    yield archive
    archive.close()


@pytest.mark.parametrize("flt", FILTERS)
def test_archive_query_agrees_with_the_in_memory_filter(db: Archive, flt: Filter) -> None:
    items = positioned_log(sample())
    db.store(TOPIC, items, {0: len(items)})
    expected = select(items, flt, limit=7, offset=2)
    assert [e for _, e in db.query(flt, limit=7, offset=2)] == expected


def test_storing_again_never_duplicates_and_progress_resumes(db: Archive) -> None:
    items = positioned_log(sample())
    assert db.store(TOPIC, items[:20], {0: 20}) == 20
    assert db.progress(TOPIC) == {0: 20}
    # progress lost or rewound (a second archiver, a restore): replaying overlaps
    assert db.store(TOPIC, items[10:], {0: 30}) == 10
    assert db.store(TOPIC, items, {0: 30}) == 0
    assert db.count() == 30
    assert db.progress(TOPIC) == {0: 30}
    report = verify(db.log())
    assert not report.broken
    assert report.entries == 30


def test_a_forged_variant_of_an_archived_entry_is_kept_as_an_anomaly(db: Archive) -> None:
    entries = sample()
    items: list[tuple[Position, AuditEntry | str]] = list(positioned_log(entries))
    forged = dataclasses.replace(entries[4], consumer="market").rehashed()
    items.append((Position(0, 30), forged))
    items.append((Position(0, 31), "not an audit entry"))
    db.store(TOPIC, items, {0: 32})
    assert db.count() == 30
    assert db.query(Filter(dept="market")) == []  # the genuine entry stays the queried one
    report = verify(db.log())
    assert [(f.kind, f.position) for f in report.problems] == [
        (Kind.INSERTED, Position(0, 30)),
        (Kind.UNREADABLE, Position(0, 31)),
    ]


def test_sqlite_urls() -> None:
    assert sqlite_path("sqlite:///audit.db") == "audit.db"
    assert sqlite_path("sqlite:////var/lib/audit.db") == "/var/lib/audit.db"
    assert sqlite_path("/tmp/a.sqlite") == "/tmp/a.sqlite"
    with pytest.raises(ExchangeError):
        sqlite_path("sqlite://host/x")


def test_reading_an_archive_that_does_not_exist_says_how_to_make_one(tmp_path: Path) -> None:
    url = str(tmp_path / "missing.sqlite")
    with pytest.raises(ExchangeError, match="exchange audit archive --to"):
        open_archive(url, setup=False)
    assert not Path(url).exists()
    open_archive(url).close()  # an empty archive is an archive
    with open_archive(url, setup=False) as db:
        assert db.count() == 0

"""One rule for dates people read: Beijing time (UTC+8), in ids and in every display.

21:40 UTC on 29 November is 05:40 on 30 November in Beijing: an application
made then is listed as applied on 2026-11-30, so its id must say 20261130 too,
and so must its audit details and the JSON of a view.
"""

from __future__ import annotations

import datetime as dt

from exchange import beijing
from exchange.audit.entry import detail_map
from exchange.catalog.model import Catalog
from exchange.sharing.grants import GrantBook
from exchange.sharing.policy import compute_view
from exchange.sharing.records import EventKind, GrantEvent, new_id

LATE_UTC = dt.datetime(2026, 11, 29, 21, 40, tzinfo=dt.UTC)  # 2026-11-30 05:40 in Beijing
BMC = "birth_medical_certificate"


def test_ids_carry_the_beijing_date() -> None:
    assert new_id("GR", LATE_UTC).startswith("GR-20261130-")
    assert new_id("APP", LATE_UTC).startswith("APP-20261130-")
    now = dt.datetime.now(dt.UTC)
    assert new_id("EV")[3:11] == f"{beijing.china_date(now):%Y%m%d}"


def test_displayed_times_are_beijing_time() -> None:
    assert beijing.shown(LATE_UTC) == "2026-11-30 05:40"
    assert beijing.shown(LATE_UTC, seconds=True) == "2026-11-30 05:40:00"
    assert beijing.iso(LATE_UTC) == "2026-11-30T05:40:00+08:00"
    assert beijing.shown(LATE_UTC.replace(tzinfo=None)) == "2026-11-30 05:40"  # naive = UTC


def test_audit_details_give_times_in_beijing_time() -> None:
    assert detail_map(applied_at=LATE_UTC) == {"applied_at": "2026-11-30T05:40:00+08:00"}


def test_a_views_json_gives_its_expiry_in_beijing_time(sample_catalog: Catalog) -> None:
    book = GrantBook()
    at = LATE_UTC - dt.timedelta(days=1)
    applied = GrantEvent(
        kind=EventKind.APPLIED,
        actor="police",
        consumer="police",
        resource=BMC,
        at=at,
        application_id="APP-1",
        fields=("mother_name",),
        purpose="落户 registration",
    )
    assert book.apply(applied, sample_catalog) is None
    approved = GrantEvent(
        kind=EventKind.APPROVED,
        actor="health",
        consumer="police",
        resource=BMC,
        at=at,
        application_id="APP-1",
        grant_id="GR-1",
        fields=("mother_name",),
        purpose="落户 registration",
        valid_until=LATE_UTC,
    )
    assert book.apply(approved, sample_catalog) is None
    view = compute_view(sample_catalog, book, "police", BMC, at=at)
    assert view.to_json()["valid_until"] == "2026-11-30T05:40:00+08:00"

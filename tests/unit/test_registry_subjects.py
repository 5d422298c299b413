"""The registry's subjects are derived from the control topics alone: the same records give
the same subjects, versions and ids whatever order an instance happened to read them in."""

from __future__ import annotations

import datetime as dt
import itertools

from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.http.auth import Principal
from exchange.registry.service import Index
from exchange.registry.subjects import ViewHistory, build
from exchange.sharing.records import EventKind, GrantEvent

BMC = "birth_medical_certificate"
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def events() -> list[GrantEvent]:
    at = [T0 + dt.timedelta(minutes=m) for m in range(1, 5)]
    return [
        GrantEvent(EventKind.SUBSCRIBED, "hrss", BMC, "hrss", at=at[0], event_id="EV-1"),
        GrantEvent(EventKind.SUBSCRIBED, "police", BMC, "police", at=at[1], event_id="EV-2"),
        GrantEvent(
            EventKind.APPLIED,
            "police",
            BMC,
            "police",
            at=at[2],
            event_id="EV-3",
            application_id="APP-1",
            fields=("mother_name",),
            purpose="落户 registration",
        ),
        GrantEvent(
            EventKind.APPROVED,
            "health",
            BMC,
            "police",
            at=at[3],
            event_id="EV-4",
            application_id="APP-1",
            grant_id="GR-1",
            fields=("mother_name",),
        ),
    ]


def subjects_after(catalog: Catalog, order: list[int]) -> dict[str, tuple[int, ...]]:
    snap = catalog_store.new_snapshot(None, catalog, actor="tests", at=T0)
    history = ViewHistory()
    items: list[object] = [snap, *events()]
    for i in order:
        item = items[i]
        if isinstance(item, GrantEvent):
            history.add_event(item)
        else:
            history.add_catalog(snap)
    subjects, _ = build(history, lambda sid: None, T0 + dt.timedelta(hours=1))
    return {name: s.ids for name, s in subjects.items()}


def test_versions_do_not_depend_on_the_order_records_were_read(sample_catalog: Catalog) -> None:
    in_order = subjects_after(sample_catalog, [0, 1, 2, 3, 4])
    police = in_order["gov.dlv.police.birth_medical_certificate-value"]
    assert len(police) == 2  # subscribed (unconditional fields), then granted one more
    assert len(in_order["gov.dlv.hrss.birth_medical_certificate-value"]) == 1
    # the catalog read after the grant events (as at a start: topic by topic), events swapped
    for order in ([1, 2, 3, 4, 0], [2, 1, 0, 3, 4], [0, 4, 3, 2, 1]):
        if order.index(4) < order.index(3):
            continue  # an approval before its application is refused by any replay
        assert subjects_after(sample_catalog, order) == in_order, order


def test_a_department_sees_its_views_and_discoverable_sources_only(
    sample_catalog: Catalog,
) -> None:
    snap = catalog_store.new_snapshot(None, sample_catalog, actor="tests", at=T0)
    history = ViewHistory()
    history.add_catalog(snap)
    for ev in events():
        history.add_event(ev)
    now = T0 + dt.timedelta(hours=1)
    subjects, schemas = build(history, lambda sid: None, now)
    index = Index(subjects, schemas, sample_catalog, 1, now)
    police, auditor = Principal("police"), Principal("auditor")
    hrss_view = "gov.dlv.hrss.birth_medical_certificate-value"
    assert index.subject(police, hrss_view) is None
    assert index.subject(auditor, hrss_view) is not None
    assert index.subject(police, "gov.dlv.police.birth_medical_certificate-value") is not None
    assert index.subject(police, "gov.src.health.birth_medical_certificate-value") is not None
    assert index.subject(police, "gov.src.health.death_registration-value") is None  # 不予共享
    assert index.subject(Principal("health"), "gov.src.health.death_registration-value")
    hrss_id = subjects[hrss_view].ids[-1]
    police_ids = set(subjects["gov.dlv.police.birth_medical_certificate-value"].ids)
    if hrss_id not in police_ids:
        assert index.holders(police, hrss_id) == []
    assert list(itertools.chain(index.holders(auditor, hrss_id)))

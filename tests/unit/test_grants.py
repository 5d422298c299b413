"""The grant book: applications, approvals, rejections, revocations, replayed from events.

No broker: events are applied to a :class:`GrantBook` directly, the way every
process replays ``gov.ctl.grants``. A refused event must change nothing,
whoever wrote it (our API or someone producing to the topic by hand).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from exchange import workdays
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.catalog.model import Catalog, ShareType
from exchange.control.state import GRANT_CODEC
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import Application, AppStatus, EventKind, GrantEvent

BMC = "birth_medical_certificate"  # provider health; mixes all three share types
DEATH = "death_registration"  # provider health; wholly not shared
LICENCE = "business_licence"  # provider market; wholly unconditional
POP = "population_basic"  # provider police

#: Monday 2026-09-28, 10:00 in Beijing: the last week before the National Day holiday.
T0 = dt.datetime(2026, 9, 28, 10, 0, tzinfo=CHINA_TZ).astimezone(dt.UTC)


def at(**delta: float) -> dt.datetime:
    return T0 + dt.timedelta(**delta)


def event(kind: EventKind, actor: str, consumer: str, resource: str = BMC, **kw: Any) -> GrantEvent:
    kw.setdefault("at", T0)
    return GrantEvent(kind=kind, actor=actor, consumer=consumer, resource=resource, **kw)


def state_of(book: GrantBook) -> tuple[Any, ...]:
    return (
        dict(book.applications),
        dict(book.grants),
        set(book.subscriptions),
        set(book.accepted),
        dict(book.current),
    )


def accept(book: GrantBook, catalog: Catalog, ev: GrantEvent) -> None:
    reason = book.apply(ev, catalog)
    assert reason is None, reason
    assert ev.event_id in book.accepted


def refuse(book: GrantBook, catalog: Catalog, ev: GrantEvent) -> str:
    """Apply ``ev``, check it was refused and changed nothing; returns the reason."""
    before = state_of(book)
    reason = book.apply(ev, catalog)
    assert reason, f"{ev.kind} by {ev.actor} was accepted"
    assert book.refused[ev.event_id] == reason
    assert state_of(book) == before, "a refused event changed the book"
    return reason


def applied(
    book: GrantBook,
    catalog: Catalog,
    fields: tuple[str, ...] = ("mother_name", "mother_id_number", "address"),
    *,
    consumer: str = "police",
    resource: str = BMC,
    when: dt.datetime = T0,
) -> str:
    app_id = f"APP-{len(book.applications) + 1}"
    accept(
        book,
        catalog,
        event(
            EventKind.APPLIED,
            consumer,
            consumer,
            resource,
            application_id=app_id,
            fields=fields,
            purpose="新生儿户口登记 household registration",
            legal_basis="《户口登记条例》第七条",
            at=when,
        ),
    )
    return app_id


def approval(
    book: GrantBook,
    app_id: str,
    *,
    actor: str | None = None,
    grant_id: str | None = None,
    **kw: Any,
) -> GrantEvent:
    app = book.applications[app_id]
    kw.setdefault("fields", app.fields)
    kw.setdefault("at", app.applied_at + dt.timedelta(hours=1))
    return event(
        EventKind.APPROVED,
        actor or "health",
        app.consumer,
        app.resource,
        application_id=app_id,
        grant_id=grant_id or f"GR-{len(book.grants) + 1}",
        purpose=app.purpose,
        **kw,
    )


def approved(book: GrantBook, catalog: Catalog, app_id: str, **kw: Any) -> str:
    ev = approval(book, app_id, **kw)
    accept(book, catalog, ev)
    assert ev.grant_id
    return ev.grant_id


def reclassify(catalog: Catalog, resource: str, field: str, share_type: ShareType) -> Catalog:
    """The same catalog with one field's share type changed (a new catalog version)."""
    res = catalog.resources[resource]
    fields = tuple(
        f.model_copy(update={"share_type": share_type}) if f.name == field else f
        for f in res.fields
    )
    resources = {**catalog.resources, resource: res.model_copy(update={"fields": fields})}
    return catalog.model_copy(update={"resources": resources})


@pytest.fixture
def book() -> GrantBook:
    return GrantBook()


# --------------------------------------------------------------- subscriptions


def test_subscription_to_a_resource_with_unconditional_fields_is_accepted(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    accept(book, sample_catalog, event(EventKind.SUBSCRIBED, "hrss", "hrss", BMC))
    assert ("hrss", BMC) in book.subscriptions
    assert book.targets(BMC, T0) == {"hrss"}


def test_subscription_to_a_wholly_not_shared_resource_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    reason = refuse(book, sample_catalog, event(EventKind.SUBSCRIBED, "police", "police", DEATH))
    assert "不予共享" in reason
    assert DEATH in reason
    assert book.targets(DEATH, T0) == set()


def test_subscription_on_behalf_of_another_department_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    reason = refuse(book, sample_catalog, event(EventKind.SUBSCRIBED, "police", "hrss", BMC))
    assert "on behalf of" in reason


def test_unknown_department_or_resource_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    assert "unknown department" in refuse(
        book, sample_catalog, event(EventKind.SUBSCRIBED, "mafia", "mafia", BMC)
    )
    assert "unknown resource" in refuse(
        book, sample_catalog, event(EventKind.SUBSCRIBED, "hrss", "hrss", "secret_files")
    )


# ---------------------------------------------------------------- applications


def test_application_is_recorded_pending(book: GrantBook, sample_catalog: Catalog) -> None:
    app_id = applied(book, sample_catalog, ("mother_name",))
    app = book.applications[app_id]
    assert app.status is AppStatus.PENDING
    assert app.fields == ("mother_name",)
    assert app.consumer == "police"
    assert book.grant_for("police", BMC, T0) is None  # applying grants nothing


@pytest.mark.parametrize("field", ["birth_weight_grams", "gestational_weeks"])
def test_application_for_a_not_shared_field_is_refused(
    book: GrantBook, sample_catalog: Catalog, field: str
) -> None:
    ev = event(
        EventKind.APPLIED,
        "civil_affairs",
        "civil_affairs",
        application_id="APP-x",
        fields=("mother_name", field),
        purpose="统计 statistics",
    )
    reason = refuse(book, sample_catalog, ev)
    assert "不予共享" in reason
    assert field in reason
    assert "母婴保健法" in reason  # the legal basis is quoted


def test_application_for_an_unconditional_field_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    ev = event(
        EventKind.APPLIED,
        "police",
        "police",
        application_id="APP-x",
        fields=("child_name",),
        purpose="落户",
    )
    reason = refuse(book, sample_catalog, ev)
    assert "无条件共享" in reason
    assert "child_name" in reason


def test_application_for_an_unknown_field_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    ev = event(
        EventKind.APPLIED, "police", "police", application_id="APP-x", fields=("blood_type",)
    )
    ev = dataclasses.replace(ev, purpose="落户")
    reason = refuse(book, sample_catalog, ev)
    assert "'blood_type' is not a field" in reason


@pytest.mark.parametrize("purpose", [None, "", "   "])
def test_application_needs_a_purpose(
    book: GrantBook, sample_catalog: Catalog, purpose: str | None
) -> None:
    ev = event(
        EventKind.APPLIED,
        "police",
        "police",
        application_id="APP-x",
        fields=("mother_name",),
        purpose=purpose,
    )
    assert "purpose" in refuse(book, sample_catalog, ev)


def test_application_to_a_wholly_not_shared_resource_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    ev = event(
        EventKind.APPLIED,
        "police",
        "police",
        DEATH,
        application_id="APP-x",
        fields=("id_number",),
        purpose="户籍注销",
    )
    reason = refuse(book, sample_catalog, ev)
    assert "wholly not shared (不予共享)" in reason


def test_the_provider_needs_no_application(book: GrantBook, sample_catalog: Catalog) -> None:
    ev = event(
        EventKind.APPLIED,
        "health",
        "health",
        application_id="APP-x",
        fields=("mother_name",),
        purpose="自用",
    )
    assert "provider needs no application" in refuse(book, sample_catalog, ev)


def test_application_on_behalf_of_another_department_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    ev = event(
        EventKind.APPLIED,
        "police",
        "hrss",
        application_id="APP-x",
        fields=("mother_name",),
        purpose="参保",
    )
    assert "on behalf of" in refuse(book, sample_catalog, ev)


# ------------------------------------------------------------------- approvals


def test_approval_creates_an_active_grant_of_the_fields(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    app_id = applied(book, sample_catalog)
    gid = approved(book, sample_catalog, app_id)
    grant = book.grant_for("police", BMC, at(hours=2))
    assert grant is not None
    assert grant.id == gid
    assert grant.fields == ("mother_name", "mother_id_number", "address")
    assert book.applications[app_id].status is AppStatus.APPROVED
    assert book.applications[app_id].grant_id == gid
    assert book.targets(BMC, at(hours=2)) == {"police"}


@pytest.mark.parametrize("actor", ["police", "hrss", "market"])
def test_approval_by_anyone_but_the_provider_is_refused(
    book: GrantBook, sample_catalog: Catalog, actor: str
) -> None:
    app_id = applied(book, sample_catalog)
    reason = refuse(book, sample_catalog, approval(book, app_id, actor=actor))
    assert "only the provider" in reason
    assert "(health)" in reason
    assert actor in reason
    assert book.grant_for("police", BMC, at(hours=2)) is None
    assert book.applications[app_id].status is AppStatus.PENDING


def test_approval_may_narrow_the_fields(book: GrantBook, sample_catalog: Catalog) -> None:
    app_id = applied(book, sample_catalog)
    approved(book, sample_catalog, app_id, fields=("mother_name",))
    grant = book.grant_for("police", BMC, at(hours=2))
    assert grant is not None
    assert grant.fields == ("mother_name",)


def test_approval_widening_the_fields_is_refused(book: GrantBook, sample_catalog: Catalog) -> None:
    app_id = applied(book, sample_catalog, ("mother_name",))
    reason = refuse(
        book, sample_catalog, approval(book, app_id, fields=("mother_name", "father_name"))
    )
    assert "never widen" in reason
    assert "father_name" in reason


def test_approval_of_no_field_is_refused(book: GrantBook, sample_catalog: Catalog) -> None:
    app_id = applied(book, sample_catalog)
    assert "at least one field" in refuse(book, sample_catalog, approval(book, app_id, fields=()))


def test_forged_approval_of_a_not_shared_field_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    """A GrantEvent written by hand, naming a not-shared field: refused whatever it says."""
    app_id = applied(book, sample_catalog, ("mother_name",))
    forged = approval(book, app_id, fields=("mother_name", "birth_weight_grams"))
    reason = refuse(book, sample_catalog, forged)
    assert "birth_weight_grams" in reason
    assert book.grant_for("police", BMC, at(hours=2)) is None


def test_approval_naming_a_not_shared_field_is_refused_with_the_rule(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    app_id = applied(book, sample_catalog, ("mother_name",))
    forged = approval(book, app_id, fields=("mother_name", "birth_weight_grams"))
    reason = refuse(book, sample_catalog, forged)
    assert "不予共享" in reason


def test_approval_of_a_field_reclassified_not_shared_after_the_application_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    """Applied while the field was conditional; the catalog now says 不予共享: no one may grant it."""
    app_id = applied(book, sample_catalog, ("mother_name", "address"))
    newer = reclassify(sample_catalog, BMC, "address", ShareType.NOT_SHARED)
    reason = refuse(book, newer, approval(book, app_id))
    assert "不予共享" in reason
    assert "'address'" in reason
    # narrowed to what is still conditional, it goes through
    approved(book, newer, app_id, fields=("mother_name",))


def test_forged_approval_without_an_application_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    forged = event(
        EventKind.APPROVED,
        "health",
        "police",
        application_id="APP-never-made",
        grant_id="GR-forged",
        fields=("mother_name",),
    )
    assert "unknown application" in refuse(book, sample_catalog, forged)


def test_approval_reusing_a_grant_id_is_refused(book: GrantBook, sample_catalog: Catalog) -> None:
    first = approved(book, sample_catalog, applied(book, sample_catalog))
    second = applied(book, sample_catalog, consumer="hrss")
    reason = refuse(book, sample_catalog, approval(book, second, grant_id=first))
    assert "already used" in reason


def test_an_application_is_answered_once(book: GrantBook, sample_catalog: Catalog) -> None:
    app_id = applied(book, sample_catalog)
    approved(book, sample_catalog, app_id)
    assert "already answered (approved)" in refuse(
        book, sample_catalog, approval(book, app_id, grant_id="GR-again")
    )
    rejection = event(
        EventKind.REJECTED,
        "health",
        "police",
        application_id=app_id,
        reason="改主意了",
        at=at(hours=3),
    )
    assert "already answered" in refuse(book, sample_catalog, rejection)


@pytest.mark.parametrize(
    ("row_filter", "expected"),
    [
        ('region_code.startsWith("33"', "does not compile"),
        ("region_code ===== 1", "does not compile"),
        ('province == "浙江"', "'province', which is not a field"),
        ("", "empty"),
        ('eval("rm -rf /")', "eval"),
    ],
)
def test_a_bad_row_filter_is_refused_at_approval(
    book: GrantBook, sample_catalog: Catalog, row_filter: str, expected: str
) -> None:
    app_id = applied(book, sample_catalog)
    reason = refuse(book, sample_catalog, approval(book, app_id, row_filter=row_filter))
    assert reason.startswith("row filter refused:")
    assert expected in reason


def test_a_good_row_filter_is_kept_on_the_grant(book: GrantBook, sample_catalog: Catalog) -> None:
    app_id = applied(book, sample_catalog)
    approved(book, sample_catalog, app_id, row_filter='region_code.startsWith("33")')
    grant = book.grant_for("police", BMC, at(hours=2))
    assert grant is not None
    assert grant.row_filter == 'region_code.startsWith("33")'


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        ({"mother_id_number": "scramble"}, "unknown mask rule 'scramble'"),
        ({"mother_id_number": "keep:6"}, "takes 2 parameters"),
        ({"mother_id_number": "keep:six:4"}, "whole number"),
        ({"blood_type": "hash"}, "'blood_type': not a field this consumer receives"),
        ({"father_name": "hash"}, "'father_name': not a field this consumer receives"),
        ({"birth_weight_grams": "replace"}, "not a field this consumer receives"),
        ({"mother_name": "year"}, "needs a date or timestamp"),
    ],
)
def test_a_bad_mask_is_refused_at_approval(
    book: GrantBook, sample_catalog: Catalog, masks: dict[str, str], expected: str
) -> None:
    app_id = applied(book, sample_catalog)
    reason = refuse(book, sample_catalog, approval(book, app_id, masks=masks))
    assert reason.startswith("mask on ")
    assert expected in reason


def test_masks_on_granted_and_unconditional_fields_are_accepted(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    app_id = applied(book, sample_catalog)
    masks = {"mother_id_number": "keep:6:4", "mother_name": "surname", "birth_date": "year"}
    approved(book, sample_catalog, app_id, masks=masks)
    grant = book.grant_for("police", BMC, at(hours=2))
    assert grant is not None
    assert grant.masks == masks


@pytest.mark.parametrize("until", [at(hours=1), at(minutes=59), at(days=-3)])
def test_valid_until_not_in_the_future_is_refused(
    book: GrantBook, sample_catalog: Catalog, until: dt.datetime
) -> None:
    app_id = applied(book, sample_catalog)
    ev = approval(book, app_id, valid_until=until)  # the approval is at T0 + 1 h
    assert "is not in the future" in refuse(book, sample_catalog, ev)


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize("reason", [None, "", "  \n "])
def test_a_rejection_needs_a_reason(
    book: GrantBook, sample_catalog: Catalog, reason: str | None
) -> None:
    app_id = applied(book, sample_catalog)
    ev = event(EventKind.REJECTED, "health", "police", application_id=app_id, reason=reason)
    assert "a reason for the rejection is required" in refuse(book, sample_catalog, ev)
    assert book.applications[app_id].status is AppStatus.PENDING


def test_a_rejection_by_anyone_but_the_provider_is_refused(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    app_id = applied(book, sample_catalog)
    ev = event(EventKind.REJECTED, "hrss", "police", application_id=app_id, reason="不给")
    assert "only the provider" in refuse(book, sample_catalog, ev)


def test_a_rejection_records_its_reason_and_grants_nothing(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    app_id = applied(book, sample_catalog)
    accept(
        book,
        sample_catalog,
        event(
            EventKind.REJECTED,
            "health",
            "police",
            application_id=app_id,
            reason="用途与申请字段不符",
            at=at(days=1),
        ),
    )
    app = book.applications[app_id]
    assert app.status is AppStatus.REJECTED
    assert app.reason == "用途与申请字段不符"
    assert book.grant_for("police", BMC, at(days=2)) is None
    assert book.targets(BMC, at(days=2)) == set()


# ------------------------------------------------------- revocation and expiry


def test_revocation_needs_a_reason_and_the_provider(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    gid = approved(book, sample_catalog, applied(book, sample_catalog))
    for reason in (None, "", "   "):
        ev = event(
            EventKind.REVOKED, "health", "police", grant_id=gid, reason=reason, at=at(hours=2)
        )
        assert "a reason for the revocation is required" in refuse(book, sample_catalog, ev)
    ev = event(EventKind.REVOKED, "police", "police", grant_id=gid, reason="x", at=at(hours=2))
    assert "only the provider" in refuse(book, sample_catalog, ev)
    assert book.grant_for("police", BMC, at(hours=3)) is not None


def test_revocation_makes_the_grant_inactive(book: GrantBook, sample_catalog: Catalog) -> None:
    gid = approved(book, sample_catalog, applied(book, sample_catalog))
    accept(
        book,
        sample_catalog,
        event(
            EventKind.REVOKED,
            "health",
            "police",
            grant_id=gid,
            reason="落户办结 registration completed",
            at=at(hours=2),
        ),
    )
    assert book.grant_for("police", BMC, at(hours=2)) is None
    grant = book.grants[gid]
    assert grant.status(at(hours=2)) == "revoked"
    assert grant.revoke_reason == "落户办结 registration completed"
    assert book.targets(BMC, at(hours=2)) == set()
    assert book.latest_grant("police", BMC) == grant
    again = event(
        EventKind.REVOKED, "health", "police", grant_id=gid, reason="again", at=at(hours=3)
    )
    assert "already revoked" in refuse(book, sample_catalog, again)


def test_a_grant_expires_at_its_valid_until(book: GrantBook, sample_catalog: Catalog) -> None:
    until = at(days=30)
    gid = approved(book, sample_catalog, applied(book, sample_catalog), valid_until=until)
    before = until - dt.timedelta(milliseconds=1)
    assert book.grant_for("police", BMC, before) is not None
    assert book.targets(BMC, before) == {"police"}
    assert book.next_expiry(at(hours=2)) == until
    assert book.grant_for("police", BMC, until) is None
    assert book.grants[gid].status(until) == "expired"
    assert book.targets(BMC, until) == set()
    assert book.next_expiry(until) is None
    late = event(EventKind.REVOKED, "health", "police", grant_id=gid, reason="x", at=at(days=31))
    assert "already expired" in refuse(book, sample_catalog, late)


def test_a_new_approval_supersedes_the_previous_grant(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    first = approved(book, sample_catalog, applied(book, sample_catalog), masks={})
    second_app = applied(book, sample_catalog, ("mother_name",), when=at(days=1))
    second = approved(book, sample_catalog, second_app, masks={"mother_name": "surname"})
    assert book.grants[first].superseded_by == second
    assert book.grants[first].status(at(days=2)) == "superseded"
    assert not book.grants[first].active(at(days=2))
    grant = book.grant_for("police", BMC, at(days=2))
    assert grant is not None
    assert grant.id == second
    assert grant.fields == ("mother_name",)
    # the superseded grant can no longer be revoked; the current one can
    stale = event(EventKind.REVOKED, "health", "police", grant_id=first, reason="x", at=at(days=3))
    assert "already superseded" in refuse(book, sample_catalog, stale)


def test_grants_of_different_consumers_are_independent(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    police = approved(book, sample_catalog, applied(book, sample_catalog))
    hrss = approved(
        book, sample_catalog, applied(book, sample_catalog, ("father_name",), consumer="hrss")
    )
    accept(
        book,
        sample_catalog,
        event(EventKind.REVOKED, "health", "police", grant_id=police, reason="x", at=at(hours=5)),
    )
    assert book.grant_for("police", BMC, at(hours=6)) is None
    hrss_grant = book.grant_for("hrss", BMC, at(hours=6))
    assert hrss_grant is not None
    assert hrss_grant.id == hrss


# ----------------------------------------------------------- replay and events


def test_the_same_event_is_applied_once(book: GrantBook, sample_catalog: Catalog) -> None:
    ev = event(EventKind.SUBSCRIBED, "hrss", "hrss", BMC)
    accept(book, sample_catalog, ev)
    assert "already processed" in (book.apply(ev, sample_catalog) or "")
    assert ev.event_id in book.accepted
    assert ev.event_id not in book.refused


def test_replaying_the_encoded_events_gives_the_same_book(sample_catalog: Catalog) -> None:
    """Every process replays gov.ctl.grants: the Avro round trip must not change a decision."""
    live = GrantBook()
    events: list[GrantEvent] = []
    original_apply = live.apply

    def recording(ev: GrantEvent, catalog: Catalog) -> str | None:
        events.append(ev)
        return original_apply(ev, catalog)

    live.apply = recording  # type: ignore[method-assign]
    app_id = applied(live, sample_catalog)
    refuse(live, sample_catalog, approval(live, app_id, actor="hrss"))
    gid = approved(
        live,
        sample_catalog,
        app_id,
        masks={"mother_id_number": "keep:6:4"},
        row_filter='region_code.startsWith("33")',
        valid_until=at(days=90),
    )
    accept(live, sample_catalog, event(EventKind.SUBSCRIBED, "hrss", "hrss", BMC))
    accept(
        live,
        sample_catalog,
        event(EventKind.REVOKED, "health", "police", grant_id=gid, reason="x", at=at(days=2)),
    )

    replayed = GrantBook()
    for ev in events:
        decoded = GrantEvent.from_avro(GRANT_CODEC.decode(GRANT_CODEC.encode(ev.to_avro())))
        assert decoded == ev
        replayed.apply(decoded, sample_catalog)
    assert state_of(replayed) == state_of(live)
    assert replayed.refused == live.refused


# ------------------------------------------------------------ 10 working days


def test_answer_due_counts_official_working_days_around_national_day() -> None:
    # Mon 2026-09-28: 29, 30 Sep, then 1-7 Oct is the National Day holiday; Sat 10 Oct is a
    # make-up working day (调休). Working days: 29, 30, 8, 9, 10, 12, 13, 14, 15, 16.
    assert workdays.answer_due(dt.date(2026, 9, 28)) == dt.date(2026, 10, 16)
    assert workdays.is_workday(dt.date(2026, 10, 10))  # Saturday, worked
    assert not workdays.is_workday(dt.date(2026, 10, 5))  # Monday, holiday
    # applied on the last day before the holiday
    assert workdays.answer_due(dt.date(2026, 9, 30)) == dt.date(2026, 10, 20)
    assert workdays.working_days_between(dt.date(2026, 9, 28), dt.date(2026, 10, 16)) == 10


def _app(applied_at: dt.datetime, answered_at: dt.datetime | None = None) -> Application:
    return Application(
        id="APP-1",
        consumer="police",
        resource=BMC,
        fields=("mother_name",),
        purpose="落户",
        legal_basis=None,
        applied_at=applied_at,
        answered_at=answered_at,
        status=AppStatus.PENDING if answered_at is None else AppStatus.APPROVED,
    )


def beijing(y: int, m: int, d: int, hh: int = 12) -> dt.datetime:
    """Noon (by default) on a Beijing calendar day, as the UTC instant the bus stores."""
    return dt.datetime(y, m, d, hh, tzinfo=CHINA_TZ).astimezone(dt.UTC)


def test_an_unanswered_application_is_overdue_after_ten_working_days(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    app_id = applied(book, sample_catalog, when=T0)  # Monday 28 Sep, before National Day
    app = book.applications[app_id]
    assert app.due() == dt.date(2026, 10, 16)
    # counting Monday to Friday only would say 12 Oct; the holiday pushes it to 16 Oct
    assert not app.overdue(beijing(2026, 10, 12))
    assert not app.overdue(beijing(2026, 10, 16))
    assert app.overdue(beijing(2026, 10, 17))
    assert app.overdue(beijing(2026, 11, 30))


def test_an_answer_within_the_period_is_not_overdue_and_a_late_one_is() -> None:
    on_time = _app(beijing(2026, 9, 28), answered_at=beijing(2026, 10, 16))
    assert not on_time.overdue(beijing(2027, 1, 1))
    late = _app(beijing(2026, 9, 28), answered_at=beijing(2026, 10, 19))
    assert late.overdue(beijing(2027, 1, 1))


def test_working_days_are_counted_on_the_beijing_calendar() -> None:
    # Monday 28 Sep 07:30 in Beijing is still Sunday 27 Sep (a holiday) in UTC
    early = _app(dt.datetime(2026, 9, 28, 7, 30, tzinfo=CHINA_TZ).astimezone(dt.UTC))
    assert early.due() == dt.date(2026, 10, 16)
    # Saturday 17 Oct 07:00 in Beijing: the period is over
    assert early.overdue(dt.datetime(2026, 10, 17, 7, 0, tzinfo=CHINA_TZ).astimezone(dt.UTC))


def test_a_row_filter_may_not_read_a_not_shared_field(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    """Which rows arrive would disclose something of the not-shared field."""
    app_id = applied(book, sample_catalog, ("mother_name",))
    ev = approval(book, app_id, fields=("mother_name",), row_filter="birth_weight_grams > 4000")
    reason = refuse(book, sample_catalog, ev)
    assert "birth_weight_grams" in reason
    assert "不予共享" in reason


@pytest.mark.parametrize(
    "purpose",
    ["\x1b[2J清屏 clears the auditor's terminal", "x" * 100_000, "右\u202eto-left override"],
    ids=["terminal-escape", "huge", "bidi-override"],
)
def test_a_forged_event_breaking_the_command_limits_is_refused_on_replay(
    book: GrantBook, sample_catalog: Catalog, purpose: str
) -> None:
    """Written straight onto gov.ctl.grants, past the API's checks: refused all the same."""
    ev = event(EventKind.APPLIED, "police", "police", fields=("mother_name",), purpose=purpose)
    assert "purpose" in refuse(book, sample_catalog, ev)


def test_the_due_date_of_an_application_is_counted_from_its_beijing_date() -> None:
    """One function computes it: 01:30 on Monday 30 Nov in Beijing is Sunday 29 Nov in UTC."""
    made = dt.datetime(2026, 11, 30, 1, 30, tzinfo=CHINA_TZ).astimezone(dt.UTC)
    assert made.date() == dt.date(2026, 11, 29)
    assert workdays.due_date(made) == dt.date(2026, 12, 14)  # not 11 Dec, from the UTC date
    assert _app(made).due() == workdays.due_date(made)
    facts = _app(made).answer_facts(made + dt.timedelta(days=1))
    assert (facts["due"], facts["working_days_taken"], facts["within_10_working_days"]) == (
        dt.date(2026, 12, 14),
        1,
        True,
    )

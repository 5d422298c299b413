"""The data-sharing authority in the grant book: review, disputes, orders, time limits per stage.

No broker: events are applied to a :class:`GrantBook` directly, as every process
replays ``gov.ctl.grants``; a refused event changes nothing (``refuse`` checks it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.avro.jsoncodec import CHINA_TZ
from exchange.catalog import signing
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog, Department
from exchange.catalog.workflow import TimeLimits, Workflow
from exchange.control import book_snapshot
from exchange.errors import CatalogErrors
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import AppStatus, EventKind, GrantEvent
from exchange.sharing.stages import Stage

BMC = "birth_medical_certificate"  # provider health; mixes all three share types
LICENCE = "business_licence"  # provider market; wholly unconditional
BUREAU = "data_bureau"
SAMPLE = Path(__file__).resolve().parents[2] / "schemas"
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


def beijing(m: int, d: int, hh: int = 10) -> dt.datetime:
    return dt.datetime(2026, m, d, hh, tzinfo=CHINA_TZ).astimezone(dt.UTC)


#: Monday 28 Sep 2026: the week before the National Day holiday (1-7 Oct; Sat 10 Oct worked)
T0 = beijing(9, 28)


def with_authority(catalog: Catalog, *, review: bool = True, **limits: int) -> Catalog:
    """``catalog`` with the data bureau as its authority (keyed) and the workflow given."""
    bureau = Department(
        id=BUREAU,
        name_zh="大数据发展管理局",
        name_en="Big Data Bureau",
        code="11330000002482999X",
        public_key=signing.public_key_of(KEY),
        data_authority=True,
    )
    return Catalog(
        departments={**catalog.departments, BUREAU: bureau},
        resources=dict(catalog.resources),
        calendar=catalog.calendar,
        workflow=Workflow(compliance_review=review, time_limits=TimeLimits(**limits)),
    )


@pytest.fixture
def catalog(sample_catalog: Catalog) -> Catalog:
    """Review on (2 working days), the provider's answer within 5 (Shanxi's rule)."""
    return with_authority(sample_catalog, answer=5)


@pytest.fixture
def book() -> GrantBook:
    return GrantBook()


def ev(kind: EventKind, actor: str, app: str, resource: str = BMC, **kw: Any) -> GrantEvent:
    kw.setdefault("at", T0)
    kw.setdefault("consumer", "police")
    event = GrantEvent(kind=kind, actor=actor, resource=resource, application_id=app, **kw)
    return signed_by(event, KEY) if actor == BUREAU else event


def signed_by(event: GrantEvent, key: Ed25519PrivateKey) -> GrantEvent:
    return dataclasses.replace(event, signature=signing.sign(key, event.signed_fields()))


def snapshot_of(book: GrantBook) -> Any:
    return (dict(book.applications), dict(book.grants), set(book.subscriptions))


def accept(book: GrantBook, catalog: Catalog, event: GrantEvent) -> None:
    reason = book.apply(event, catalog)
    assert reason is None, reason


def refuse(book: GrantBook, catalog: Catalog, event: GrantEvent) -> str:
    before = snapshot_of(book)
    reason = book.apply(event, catalog)
    assert reason, f"{event.kind} by {event.actor} was accepted"
    assert snapshot_of(book) == before, "a refused event changed the book"
    return reason


def apply_for(
    book: GrantBook,
    catalog: Catalog,
    fields: tuple[str, ...] = ("mother_name", "mother_id_number"),
    *,
    resource: str = BMC,
    at: dt.datetime = T0,
) -> str:
    app_id = f"APP-{len(book.applications) + 1}"
    accept(
        book,
        catalog,
        ev(
            EventKind.APPLIED,
            "police",
            app_id,
            resource,
            fields=fields,
            purpose="新生儿落户 registration of newborns",
            at=at,
        ),
    )
    return app_id


def rejected(book: GrantBook, catalog: Catalog) -> str:
    app = apply_for(book, catalog)
    accept(book, catalog, ev(EventKind.REVIEW_PASSED, BUREAU, app))
    accept(book, catalog, ev(EventKind.REJECTED, "health", app, reason="隐私 privacy"))
    return app


def escalated(book: GrantBook, catalog: Catalog) -> str:
    app = rejected(book, catalog)
    accept(book, catalog, ev(EventKind.CONTESTED, "police", app, reason="落户需要 duty"))
    accept(book, catalog, ev(EventKind.NEGOTIATED, "health", app, reason="只给姓名 name only?"))
    accept(book, catalog, ev(EventKind.ESCALATED, "police", app, reason="协商不成 no agreement"))
    return app


# --- compliance review -----------------------------------------------------------------------


def test_under_review_the_provider_cannot_answer_until_the_authority_passes(
    book: GrantBook, catalog: Catalog
) -> None:
    app = apply_for(book, catalog)
    assert book.applications[app].stage is Stage.REVIEW
    terms: dict[str, Any] = {"grant_id": "GR-1", "fields": ("mother_name",)}
    early = ev(EventKind.APPROVED, "health", app, **terms)
    assert "under compliance review" in refuse(book, catalog, early)
    accept(book, catalog, ev(EventKind.REVIEW_PASSED, BUREAU, app))
    assert book.applications[app].stage is Stage.ANSWER
    accept(book, catalog, ev(EventKind.APPROVED, "health", app, **terms))
    got = book.applications[app]
    assert (got.stage, got.status, got.grant_id) == (Stage.APPROVED, AppStatus.APPROVED, "GR-1")
    assert [s.name for s in got.steps] == ["applied", "reviewed", "answered"]
    assert [s.actor for s in got.steps] == ["police", BUREAU, "health"]


def test_unconditional_data_is_authorised_at_review_and_becomes_the_subscription(
    book: GrantBook, catalog: Catalog, sample_catalog: Catalog
) -> None:
    fields = tuple(catalog.resource(LICENCE).field_names()[:2])
    app = apply_for(book, catalog, fields, resource=LICENCE)
    accept(book, catalog, ev(EventKind.REVIEW_PASSED, BUREAU, app, LICENCE))
    got = book.applications[app]
    assert (got.stage, got.status) == (Stage.AUTHORISED, AppStatus.APPROVED)
    assert ("police", LICENCE) in book.subscriptions
    # without review, unconditional data needs no application (subscribe instead)
    plain = with_authority(sample_catalog, review=False)
    bad = ev(EventKind.APPLIED, "police", "APP-X", LICENCE, fields=fields, purpose="p")
    assert "without an application" in refuse(GrantBook(), plain, bad)


def test_the_authority_returns_an_application_with_a_reason_the_consumer_sees(
    book: GrantBook, catalog: Catalog
) -> None:
    app = apply_for(book, catalog)
    assert "reason" in refuse(book, catalog, ev(EventKind.REVIEW_RETURNED, BUREAU, app))
    why = "用途不明 purpose missing"
    accept(book, catalog, ev(EventKind.REVIEW_RETURNED, BUREAU, app, reason=why))
    got = book.applications[app]
    assert (got.stage, got.status, got.reason) == (Stage.RETURNED, AppStatus.RETURNED, why)
    assert got.path()[-1]["outcome"] == "returned"
    assert got.path()[-1]["reason"] == why


def test_only_the_authority_reviews_and_only_with_its_own_key(
    book: GrantBook, catalog: Catalog
) -> None:
    app = apply_for(book, catalog)
    by_provider = ev(EventKind.REVIEW_PASSED, "health", app)
    assert "only the data-sharing authority (data_bureau)" in refuse(book, catalog, by_provider)
    forged = signed_by(ev(EventKind.REVIEW_PASSED, BUREAU, app), OTHER_KEY)
    assert "not signed with 'data_bureau'" in refuse(book, catalog, forged)
    unsigned = dataclasses.replace(forged, signature=None, event_id="EV-UNSIGNED")
    assert "no signature" in refuse(book, catalog, unsigned)


# --- disputes ----------------------------------------------------------------------------------


def test_rejected_contested_escalated_and_ordered_makes_a_grant_the_provider_cannot_end(
    book: GrantBook, catalog: Catalog
) -> None:
    app = escalated(book, catalog)
    assert book.applications[app].stage is Stage.ESCALATED
    order = ev(
        EventKind.ORDERED,
        BUREAU,
        app,
        grant_id="GR-ORDER",
        fields=("mother_name",),
        masks={"mother_name": "surname"},
        reason="履职必需 needed for its duties",
        valid_until=beijing(12, 31),
    )
    accept(book, catalog, order)
    got = book.applications[app]
    assert (got.stage, got.status, got.grant_id) == (Stage.ORDERED, AppStatus.ORDERED, "GR-ORDER")
    grant = book.grant_for("police", BMC, beijing(10, 1))
    assert grant is not None
    assert grant.ordered_by == BUREAU
    assert grant.masks == {"mother_name": "surname"}
    revoke = ev(EventKind.REVOKED, "health", app, grant_id="GR-ORDER", reason="不同意")
    assert "stands until the authority" in refuse(book, catalog, revoke)
    accept(book, catalog, ev(EventKind.APPEALED, "health", app, reason="申请复核 appeal"))
    assert book.grant_for("police", BMC, beijing(10, 1)) is not None  # the grant stands
    steps = [s.name for s in book.applications[app].steps]
    assert steps == [
        "applied",
        "reviewed",
        "answered",
        "contested",
        "negotiated",
        "escalated",
        "decided",
        "appealed",
    ]
    by_bureau = ev(EventKind.REVOKED, BUREAU, app, grant_id="GR-ORDER", reason="复核后撤销")
    accept(book, catalog, by_bureau)
    assert book.grant_for("police", BMC, beijing(10, 2)) is None


def test_no_order_reaches_a_not_shared_field(book: GrantBook, catalog: Catalog) -> None:
    app = escalated(book, catalog)
    for fields in (("birth_weight_grams",), ("mother_name", "gestational_weeks")):
        order = ev(EventKind.ORDERED, BUREAU, app, grant_id="GR-X", fields=fields, reason="r")
        assert "不予共享" in refuse(book, catalog, order)
    by_filter = ev(
        EventKind.ORDERED,
        BUREAU,
        app,
        grant_id="GR-Y",
        fields=("mother_name",),
        row_filter="birth_weight_grams > 4000",
        reason="r",
    )
    assert "不予共享" in refuse(book, catalog, by_filter)


def test_an_order_signed_with_another_key_or_by_another_department_is_refused(
    book: GrantBook, catalog: Catalog
) -> None:
    app = escalated(book, catalog)
    terms: dict[str, Any] = {"grant_id": "GR-F", "fields": ("mother_name",), "reason": "r"}
    forged = signed_by(ev(EventKind.ORDERED, BUREAU, app, **terms), OTHER_KEY)
    assert "not signed with 'data_bureau'" in refuse(book, catalog, forged)
    by_consumer = ev(EventKind.ORDERED, "police", app, **terms)
    assert "only the data-sharing authority" in refuse(book, catalog, by_consumer)


def test_the_steps_of_a_dispute_come_in_order_from_the_right_party(
    book: GrantBook, catalog: Catalog
) -> None:
    app = apply_for(book, catalog)
    contest = ev(EventKind.CONTESTED, "police", app, reason="needed")
    assert "at stage review" in refuse(book, catalog, contest)
    app = rejected(book, catalog)
    by_provider = ev(EventKind.CONTESTED, "health", app, reason="x")
    assert "only the applicant (police)" in refuse(book, catalog, by_provider)
    escalate = ev(EventKind.ESCALATED, "police", app, reason="x")
    assert "not negotiation" in refuse(book, catalog, escalate)  # negotiate first
    accept(book, catalog, ev(EventKind.CONTESTED, "police", app, reason="needed"))
    stranger = ev(EventKind.NEGOTIATED, "market", app, reason="hello")
    assert "only police (consumer) or health (provider)" in refuse(book, catalog, stranger)
    accept(book, catalog, ev(EventKind.ESCALATED, "health", app, reason="no agreement"))
    accept(book, catalog, ev(EventKind.UPHELD, BUREAU, app, reason="法律禁止 the law forbids"))
    got = book.applications[app]
    assert (got.stage, got.status) == (Stage.UPHELD, AppStatus.REJECTED)
    assert book.grant_for("police", BMC, beijing(10, 1)) is None


def test_an_approval_during_negotiation_settles_the_dispute(
    book: GrantBook, catalog: Catalog
) -> None:
    app = rejected(book, catalog)
    accept(book, catalog, ev(EventKind.CONTESTED, "police", app, reason="needed"))
    grant = ev(EventKind.APPROVED, "health", app, grant_id="GR-N", fields=("mother_name",))
    accept(book, catalog, grant)
    got = book.applications[app]
    assert (got.stage, got.status, got.grant_id) == (Stage.APPROVED, AppStatus.APPROVED, "GR-N")


# --- time limits per stage, on the official calendar -------------------------------------------


def test_each_stage_is_overdue_after_its_own_limit_counted_across_the_national_day_holiday(
    book: GrantBook, catalog: Catalog
) -> None:
    wednesday = beijing(9, 30)  # review: 2 working days: 8 and 9 Oct (1-7 Oct are off)
    app = apply_for(book, catalog, at=wednesday)
    got = book.applications[app]
    assert got.due() == dt.date(2026, 10, 9)  # Monday to Friday alone would say 2 Oct
    assert got.overdue_stage(beijing(10, 9, 18)) is None
    late = got.overdue_stage(beijing(10, 10))  # Saturday 10 Oct: a make-up working day
    assert late is not None
    assert late.stage is Stage.REVIEW
    # passed late on 12 Oct; the provider's 5 working days start then: 13-16 and 19 Oct
    accept(book, catalog, ev(EventKind.REVIEW_PASSED, BUREAU, app, at=beijing(10, 12)))
    got = book.applications[app]
    assert got.overdue(beijing(10, 12))  # the review was late, and stays so
    assert got.overdue_stage(beijing(10, 19)) is None
    assert got.due() == dt.date(2026, 10, 19)
    answer = got.overdue_stage(beijing(10, 20))
    assert answer is not None
    assert answer.stage is Stage.ANSWER
    [review, _answer_window] = got.windows()
    assert (review.due, review.end) == (dt.date(2026, 10, 9), beijing(10, 12))


def test_time_limits_changed_in_the_catalog_apply_to_new_applications_only(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    five = with_authority(sample_catalog, review=False, answer=5)
    old = apply_for(book, five, at=T0)
    ten = with_authority(sample_catalog, review=False, answer=10)
    new = apply_for(book, ten, at=T0)
    assert book.applications[old].limits["answer"] == 5
    assert book.applications[new].limits["answer"] == 10
    assert book.applications[old].due() == dt.date(2026, 10, 10)  # 29, 30 Sep, 8, 9, 10 Oct
    assert book.applications[new].due() == dt.date(2026, 10, 16)


def test_a_resource_not_yet_on_the_platform_takes_the_longer_answer_limit(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    catalog = with_authority(sample_catalog, review=False, answer=5, answer_unpublished=10)
    resources = dict(catalog.resources)
    resources[BMC] = resources[BMC].model_copy(update={"on_platform": False})
    catalog = catalog.model_copy(update={"resources": resources})
    app = apply_for(book, catalog)
    assert book.applications[app].limits["answer"] == 10


def test_the_path_survives_a_grant_book_snapshot(book: GrantBook, catalog: Catalog) -> None:
    app = escalated(book, catalog)
    accept(
        book,
        catalog,
        ev(EventKind.ORDERED, BUREAU, app, grant_id="GR-S", fields=("mother_name",), reason="r"),
    )
    value = book_snapshot.encode(book, 42, 1, "digest", "router-test")
    again = book_snapshot.decode(value).book
    assert again.applications == book.applications
    assert again.grants["GR-S"].ordered_by == BUREAU
    assert again.applications[app].steps[-1].name == "decided"


# --- the settings in the catalog directory ------------------------------------------------------


def _catalog_dir(tmp_path: Path, workflow: str, bureau: str) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(SAMPLE, root)
    departments = root / "departments.yaml"
    departments.write_text(departments.read_text(encoding="utf-8") + bureau, encoding="utf-8")
    (root / "workflow.yaml").write_text(workflow, encoding="utf-8")
    return root


BUREAU_YAML = f"""  - id: data_bureau
    name_zh: 大数据发展管理局
    name_en: Big Data Bureau
    code: "11330000002482999X"
    data_authority: true
    public_key: "{signing.public_key_of(KEY)}"
"""


def test_workflow_yaml_sets_review_and_the_time_limits(tmp_path: Path) -> None:
    root = _catalog_dir(
        tmp_path, "compliance_review: true\ntime_limits:\n  review: 2\n  answer: 5\n", BUREAU_YAML
    )
    catalog = load_catalog(root)
    assert catalog.workflow.compliance_review
    assert catalog.workflow.time_limits.for_case(on_platform=True)["answer"] == 5
    authority = catalog.authority()
    assert authority is not None
    assert authority.id == BUREAU


@pytest.mark.parametrize(
    ("workflow", "bureau", "expected"),
    [
        ("time_limits:\n  review: 0\n", BUREAU_YAML, "workflow.yaml:2: time_limits.review"),
        ("time_limits:\n  reveiw: 2\n", BUREAU_YAML, "time_limits.reveiw"),
        ("compliance_review: true\n", "", "no department is the data-sharing authority"),
        ("{}\n", BUREAU_YAML.replace('    public_key: "', '    x_: "'), "x_"),
        (
            "{}\n",
            BUREAU_YAML.split("    public_key")[0] + "\n",
            "has no public_key to verify its signed decisions",
        ),
        (
            "{}\n",
            BUREAU_YAML + BUREAU_YAML.replace("data_bureau", "bureau_two").replace("999X", "998X"),
            "only one department may be the data-sharing authority",
        ),
    ],
    ids=["zero-days", "misspelt", "review-without-authority", "unknown-key", "no-key", "two"],
)
def test_a_wrong_workflow_setting_is_named_with_its_file(
    tmp_path: Path, workflow: str, bureau: str, expected: str
) -> None:
    root = _catalog_dir(tmp_path, workflow, bureau)
    with pytest.raises(CatalogErrors) as caught:
        load_catalog(root)
    assert expected in str(caught.value)

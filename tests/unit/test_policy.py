"""The permission manager's decision (compute_view) and the schema of a view (view_schema).

fields(C, R) = unconditional ∪ (conditional ∩ fields of C's active grant); not-shared
never; the provider sees everything. No broker: grants are built by replaying
events into a :class:`GrantBook`, the way every process does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import fastavro
import pytest

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.catalog.model import Catalog, ShareType
from exchange.dev import sample
from exchange.errors import ExchangeError
from exchange.router.view import compile_view
from exchange.sharing.grants import GrantBook
from exchange.sharing.policy import View, compute_view, view_schema
from exchange.sharing.records import EventKind, GrantEvent

BMC = "birth_medical_certificate"
DEATH = "death_registration"
LICENCE = "business_licence"
POP = "population_basic"
SECRET = b"x" * 32

T0 = dt.datetime(2026, 9, 28, 10, 0, tzinfo=CHINA_TZ).astimezone(dt.UTC)
LATER = T0 + dt.timedelta(days=1)

UNCONDITIONAL = [
    "certificate_no",
    "child_name",
    "gender",
    "birth_date",
    "hospital_name",
    "region_code",
    "issued_at",
]
CONDITIONAL = ["mother_name", "mother_id_number", "father_name", "father_id_number", "address"]
NOT_SHARED = ["birth_weight_grams", "gestational_weeks"]


def ok(book: GrantBook, catalog: Catalog, ev: GrantEvent) -> None:
    reason = book.apply(ev, catalog)
    assert reason is None, reason


def grant(
    book: GrantBook,
    catalog: Catalog,
    consumer: str,
    fields: tuple[str, ...],
    *,
    resource: str = BMC,
    approve_fields: tuple[str, ...] | None = None,
    **approval: Any,
) -> str:
    """Apply as ``consumer`` and have the provider approve; returns the grant id."""
    provider = catalog.resources[resource].provider
    app_id = f"APP-{len(book.applications) + 1}"
    grant_id = f"GR-{len(book.grants) + 1}"
    ok(
        book,
        catalog,
        GrantEvent(
            kind=EventKind.APPLIED,
            actor=consumer,
            consumer=consumer,
            resource=resource,
            application_id=app_id,
            fields=fields,
            purpose="测试 test",
            at=T0,
        ),
    )
    ok(
        book,
        catalog,
        GrantEvent(
            kind=EventKind.APPROVED,
            actor=provider,
            consumer=consumer,
            resource=resource,
            application_id=app_id,
            grant_id=grant_id,
            fields=approve_fields or fields,
            at=T0 + dt.timedelta(minutes=1),
            **approval,
        ),
    )
    return grant_id


def revoke(book: GrantBook, catalog: Catalog, grant_id: str, at: dt.datetime) -> None:
    g = book.grants[grant_id]
    ok(
        book,
        catalog,
        GrantEvent(
            kind=EventKind.REVOKED,
            actor=catalog.resources[g.resource].provider,
            consumer=g.consumer,
            resource=g.resource,
            grant_id=grant_id,
            reason="办结 done",
            at=at,
        ),
    )


def reclassify(catalog: Catalog, resource: str, share_types: dict[str, ShareType]) -> Catalog:
    res = catalog.resources[resource]
    fields = tuple(
        f.model_copy(update={"share_type": share_types[f.name]}) if f.name in share_types else f
        for f in res.fields
    )
    resources = {**catalog.resources, resource: res.model_copy(update={"fields": fields})}
    return catalog.model_copy(update={"resources": resources})


def delivered(catalog: Catalog, view: View, record: dict[str, Any]) -> dict[str, Any] | None:
    """What the router would put on the wire for ``record``, decoded with the view schema."""
    res = catalog.resources[view.resource]
    cv = compile_view(res, view, SECRET)
    framed = cv.render(record)
    if framed is None:
        return None
    sid, body = wire.unframe(framed)
    assert sid == cv.schema_id == avro.schema_id(view_schema(res, view))
    return wire.decode(avro.parse(view_schema(res, view)), body)


@pytest.fixture
def book() -> GrantBook:
    return GrantBook()


# -------------------------------------------------------------------- fields


def test_the_provider_sees_every_field(book: GrantBook, sample_catalog: Catalog) -> None:
    for resource in (BMC, DEATH, LICENCE):
        res = sample_catalog.resources[resource]
        view = compute_view(sample_catalog, book, res.provider, resource, at=LATER)
        assert list(view.fields) == res.field_names()
        assert view.denied is None
        assert view.excluded == {}
        assert view.masks == {}


def test_without_a_grant_only_unconditional_fields(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    assert list(view.fields) == UNCONDITIONAL
    assert view.denied is None
    assert view.grant_id is None
    assert sorted(view.excluded) == sorted(CONDITIONAL + NOT_SHARED)


def test_explain_says_which_rule_excludes_each_field(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    excluded = compute_view(sample_catalog, book, "police", BMC, at=LATER).excluded
    for name in NOT_SHARED:
        assert excluded[name].startswith("不予共享 not shared")
        assert "legal basis" in excluded[name]
        assert "母婴保健法" in excluded[name]
    for name in CONDITIONAL:
        assert excluded[name].startswith("有条件共享 conditional")
        assert "no active grant" in excluded[name]
        assert "'health'" in excluded[name]  # whom to apply to


def test_an_active_grant_adds_exactly_its_conditional_fields(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    gid = grant(book, sample_catalog, "police", ("mother_name", "address"))
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    assert set(view.fields) == set(UNCONDITIONAL) | {"mother_name", "address"}
    # in the resource's order
    res = sample_catalog.resources[BMC]
    assert list(view.fields) == [n for n in res.field_names() if n in view.fields]
    assert view.grant_id == gid
    for name in ("mother_id_number", "father_name", "father_id_number"):
        assert view.excluded[name] == f"有条件共享 conditional: not among the fields of grant {gid}"
    for name in NOT_SHARED:
        assert view.excluded[name].startswith("不予共享")


def test_a_grant_is_only_for_its_consumer(book: GrantBook, sample_catalog: Catalog) -> None:
    grant(book, sample_catalog, "police", ("mother_name",))
    for other in ("hrss", "civil_affairs", "market"):
        view = compute_view(sample_catalog, book, other, BMC, at=LATER)
        assert list(view.fields) == UNCONDITIONAL
        assert view.grant_id is None


def test_the_grant_carries_masks_filter_purpose_and_expiry(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    until = T0 + dt.timedelta(days=30)
    gid = grant(
        book,
        sample_catalog,
        "police",
        ("mother_name", "mother_id_number"),
        masks={"mother_id_number": "keep:6:4"},
        row_filter='region_code.startsWith("33")',
        valid_until=until,
    )
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    assert view.masks == {"mother_id_number": "keep:6:4"}
    assert view.row_filter == 'region_code.startsWith("33")'
    assert view.grant_id == gid
    assert view.valid_until == until
    assert view.purpose == "测试 test"
    js = view.to_json()
    assert js["decision"] == "granted"
    assert js["masks"] == {"mother_id_number": "keep:6:4"}
    assert js["valid_until"] == until.astimezone(CHINA_TZ).isoformat()  # Beijing time


def test_not_shared_fields_are_never_in_a_view_whatever_a_grant_says(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    """A grant made while fields were conditional; the catalog now says 不予共享."""
    grant(book, sample_catalog, "police", ("mother_name", "mother_id_number", "address"))
    newer = reclassify(
        sample_catalog,
        BMC,
        {"mother_id_number": ShareType.NOT_SHARED, "address": ShareType.NOT_SHARED},
    )
    view = compute_view(newer, book, "police", BMC, at=LATER)
    assert "mother_id_number" not in view.fields
    assert "address" not in view.fields
    assert "mother_name" in view.fields
    assert view.excluded["mother_id_number"].startswith("不予共享")
    assert not set(view.fields) & set(NOT_SHARED)


def test_after_revocation_back_to_unconditional_fields(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    gid = grant(book, sample_catalog, "police", ("mother_name",), masks={"mother_name": "surname"})
    revoke(book, sample_catalog, gid, T0 + dt.timedelta(hours=1))
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    assert list(view.fields) == UNCONDITIONAL
    assert view.grant_id is None
    assert view.masks == {}
    assert view.excluded["mother_name"] == (
        f"有条件共享 conditional: grant {gid} is revoked; apply again"
    )


def test_after_expiry_back_to_unconditional_fields(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    until = T0 + dt.timedelta(hours=2)
    gid = grant(book, sample_catalog, "police", ("mother_name",), valid_until=until)
    just_before = compute_view(
        sample_catalog, book, "police", BMC, at=until - dt.timedelta(milliseconds=1)
    )
    assert "mother_name" in just_before.fields
    view = compute_view(sample_catalog, book, "police", BMC, at=until)
    assert list(view.fields) == UNCONDITIONAL
    assert view.excluded["mother_name"] == (
        f"有条件共享 conditional: grant {gid} is expired; apply again"
    )


def test_a_new_grant_replaces_the_previous_one(book: GrantBook, sample_catalog: Catalog) -> None:
    grant(book, sample_catalog, "police", ("mother_name", "address"))
    second = grant(book, sample_catalog, "police", ("father_name",))
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    assert view.grant_id == second
    assert set(view.fields) == set(UNCONDITIONAL) | {"father_name"}


def test_a_wholly_not_shared_resource_is_denied_to_everyone_but_its_provider(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    for consumer in ("police", "hrss", "civil_affairs", "market"):
        view = compute_view(sample_catalog, book, consumer, DEATH, at=LATER)
        assert view.denied is not None
        assert "不予共享" in view.denied
        assert "wholly not shared" in view.denied
        assert view.fields == ()
        assert view.to_json()["decision"] == "denied"
        assert all(r.startswith("不予共享") for r in view.excluded.values())
        assert len(view.excluded) == len(sample_catalog.resources[DEATH].fields)


def test_a_wholly_unconditional_resource_is_all_fields_for_everyone(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    res = sample_catalog.resources[LICENCE]
    for consumer in ("police", "hrss", "health", "civil_affairs"):
        view = compute_view(sample_catalog, book, consumer, LICENCE, at=LATER)
        assert list(view.fields) == res.field_names()
        assert view.excluded == {}
        assert view.denied is None
    # the schema is the resource schema itself: the router forwards the bytes as they are
    assert view_schema(res, view) is res.schema_


def test_a_view_with_no_field_left_is_denied_with_the_rule(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    only_conditional = reclassify(
        sample_catalog,
        POP,
        {"region_code": ShareType.CONDITIONAL, "updated_at": ShareType.CONDITIONAL},
    )
    view = compute_view(only_conditional, book, "health", POP, at=LATER)
    assert view.denied is not None
    assert "有条件共享" in view.denied
    assert "no active grant" in view.denied
    assert view.fields == ()
    book2 = GrantBook()
    grant(book2, only_conditional, "health", ("name",), resource=POP)
    granted = compute_view(only_conditional, book2, "health", POP, at=LATER)
    assert granted.denied is None
    assert granted.fields == ("name",)


def test_unknown_consumer_or_resource_raises(book: GrantBook, sample_catalog: Catalog) -> None:
    with pytest.raises(ExchangeError, match="unknown department"):
        compute_view(sample_catalog, book, "mafia", BMC, at=LATER)
    with pytest.raises(ExchangeError, match="unknown resource"):
        compute_view(sample_catalog, book, "police", "secret_files", at=LATER)


# --------------------------------------------------------------- view schema


def test_view_schema_keeps_the_entitled_fields_only(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    res = sample_catalog.resources[BMC]
    grant(book, sample_catalog, "police", ("mother_name",))
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    schema = view_schema(res, view)
    assert [f["name"] for f in schema["fields"]] == list(view.fields)
    by_name = {f["name"]: f for f in res.schema_["fields"]}
    for f in schema["fields"]:
        assert f == by_name[f["name"]]  # unmasked fields keep their type and doc
    assert schema["namespace"] == "gov.exchange.view"
    assert f"{len(view.fields)} of {len(res.fields)} fields" in schema["doc"]
    fastavro.parse_schema(schema)
    assert avro.schema_id(schema) != res.schema_id


def test_view_schema_turns_masked_fields_into_strings_naming_the_rule(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    res = sample_catalog.resources[BMC]
    masks = {
        "mother_id_number": "keep:6:4",
        "father_name": "hash",
        "birth_date": "year",
        "mother_name": "surname",
        "address": "replace:已隐藏",
    }
    grant(book, sample_catalog, "police", tuple(CONDITIONAL), masks=masks)
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    schema = view_schema(res, view)
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["mother_id_number"]["type"] == "string"
    assert "keep first 6 and last 4 characters (keep:6:4)" in fields["mother_id_number"]["doc"]
    assert fields["mother_id_number"]["doc"].startswith("母亲公民身份号码")
    assert fields["father_name"]["type"] == ["null", "string"]  # nullable stays nullable
    assert fields["father_name"]["default"] is None
    assert "(hash)" in fields["father_name"]["doc"]
    assert fields["birth_date"]["type"] == "string"  # a date, masked, is text
    assert "year only (year)" in fields["birth_date"]["doc"]
    assert "(surname)" in fields["mother_name"]["doc"]
    assert "replaced by '已隐藏'" in fields["address"]["doc"]
    for name in set(fields) - set(masks):
        assert "masked" not in fields[name].get("doc", "")
    fastavro.parse_schema(schema)


def test_delivered_records_match_the_view(book: GrantBook, sample_catalog: Catalog) -> None:
    """Project, filter and mask one record the way the router does, decode with the view schema."""
    grant(
        book,
        sample_catalog,
        "police",
        ("mother_name", "mother_id_number", "father_id_number"),
        masks={"mother_id_number": "keep:6:4", "father_id_number": "hash"},
        row_filter='region_code.startsWith("33")',
    )
    view = compute_view(sample_catalog, book, "police", BMC, at=LATER)
    rec = sample.generate(sample_catalog.resources[BMC].schema_, 1, seed=7)[0]
    rec.update(
        region_code="330102",
        mother_id_number="330102199001011234",
        father_id_number="330102198801015678",
    )
    out = delivered(sample_catalog, view, rec)
    assert out is not None
    assert list(out) == list(view.fields)
    assert out["mother_id_number"] == "330102********1234"
    assert len(out["father_id_number"]) == 32
    assert "5678" not in out["father_id_number"]
    assert out["mother_name"] == rec["mother_name"]
    for name in UNCONDITIONAL:
        assert out[name] == rec[name]
    rec["region_code"] = "110101"  # Beijing: the filter drops it
    assert delivered(sample_catalog, view, rec) is None


def test_entitled_is_not_received_until_the_department_subscribes_or_holds_a_grant(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    view = compute_view(sample_catalog, book, "hrss", BMC, at=LATER)
    assert view.fields == tuple(UNCONDITIONAL)  # entitled to
    assert not view.receiving
    assert view.delivered == ()
    assert view.not_receiving() == (
        f"'hrss' has not subscribed to {BMC!r}, so nothing is delivered to gov.dlv.hrss.{BMC}; "
        f"subscribe first: exchange subscribe --as hrss {BMC}"
    )
    assert view.to_json()["delivered_fields"] == []
    assert view.to_json()["entitled_fields"] == UNCONDITIONAL

    ok(book, sample_catalog, GrantEvent(EventKind.SUBSCRIBED, "hrss", BMC, "hrss", at=T0))
    subscribed = compute_view(sample_catalog, book, "hrss", BMC, at=LATER)
    assert subscribed.receiving
    assert subscribed.delivered == subscribed.fields
    assert subscribed.not_receiving() is None

    grant(book, sample_catalog, "police", ("mother_name",))  # a grant is delivered unasked
    assert compute_view(sample_catalog, book, "police", BMC, at=LATER).receiving
    provider = compute_view(sample_catalog, book, "health", BMC, at=LATER)
    assert provider.receiving
    assert provider.topic == f"gov.src.health.{BMC}"


def test_a_denied_view_says_which_conditional_fields_to_apply_for(
    book: GrantBook, sample_catalog: Catalog
) -> None:
    only_conditional = reclassify(
        sample_catalog,
        POP,
        {"region_code": ShareType.CONDITIONAL, "updated_at": ShareType.CONDITIONAL},
    )
    view = compute_view(only_conditional, book, "health", POP, at=LATER)
    why = view.not_receiving()
    assert why is not None
    assert why.startswith(f"'health' is not entitled to {POP!r}: no field of")
    assert "region_code" in view.may_apply_for
    assert f"exchange apply --as health {POP} --fields " in why
    not_shared = compute_view(sample_catalog, book, "hrss", DEATH, at=LATER)
    assert not_shared.may_apply_for == ()
    assert "exchange apply" not in (not_shared.not_receiving() or "")

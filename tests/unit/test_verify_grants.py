"""Verification grants (核验) and quotas on the grant book: what they allow and refuse.

No broker: events are applied to a :class:`GrantBook` directly. A verification grant
delivers nothing to the stream; quotas are checked like every other condition; an
event signed before these fields existed still verifies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from exchange.avro.control_records import ControlCodec
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.control.book_snapshot import decode, encode
from exchange.control.state import GRANT_CODEC
from exchange.errors import CommandRefused
from exchange.gateway.quota import OverQuota, Quotas
from exchange.sharing import limits
from exchange.sharing.grants import GrantBook
from exchange.sharing.policy import compute_view
from exchange.sharing.records import GRANT_EVENT_V1, EventKind, Grant, GrantEvent, GrantKind

POP = "population_basic"  # provider police
T0 = dt.datetime(2026, 9, 28, 2, 0, tzinfo=dt.UTC)


def event(kind: EventKind, actor: str, consumer: str, **kw: Any) -> GrantEvent:
    kw.setdefault("at", T0)
    return GrantEvent(kind=kind, actor=actor, consumer=consumer, resource=POP, **kw)


def verify_grant(book: GrantBook, catalog: Catalog, **approve: Any) -> str | None:
    applied = event(
        EventKind.APPLIED,
        "civil_affairs",
        "civil_affairs",
        application_id="APP-v",
        fields=("id_number", "name"),
        purpose="低保 核验",
        grant_kind="verify",
    )
    assert book.apply(applied, catalog) is None
    return book.apply(
        event(
            EventKind.APPROVED,
            "police",
            "civil_affairs",
            application_id="APP-v",
            grant_id="GR-v",
            fields=("id_number", "name"),
            **approve,
        ),
        catalog,
    )


def test_a_verification_grant_delivers_nothing_to_the_stream(sample_catalog: Catalog) -> None:
    book = GrantBook()
    assert verify_grant(book, sample_catalog, grant_kind="verify", quota_per_second=5) is None
    grant = book.grants["GR-v"]
    assert grant.kind is GrantKind.VERIFY
    assert grant.quota_per_second == 5
    assert "civil_affairs" not in book.targets(POP, T0)
    view = compute_view(sample_catalog, book, "civil_affairs", POP, at=T0)
    assert "name" not in view.fields
    assert "verification (核验) only" in view.excluded["name"]
    revived = decode(encode(book, 0, 1, "digest", "test"))  # snapshots keep the kind
    assert revived.book.grants["GR-v"].kind is GrantKind.VERIFY


def test_an_approval_may_not_widen_a_verification_into_data(sample_catalog: Catalog) -> None:
    reason = verify_grant(GrantBook(), sample_catalog)
    assert reason is not None
    assert "may not widen it into data" in reason


def test_a_verification_grant_takes_no_mask(sample_catalog: Catalog) -> None:
    reason = verify_grant(
        GrantBook(), sample_catalog, grant_kind="verify", masks={"name": "surname"}
    )
    assert reason is not None
    assert "takes no mask" in reason


@pytest.mark.parametrize(
    ("facts", "says"),
    [
        ({"quota_per_day": 0}, "quota per day is 0"),
        ({"quota_per_second": -3}, "quota per second is -3"),
        ({"quota_per_second": 10**12}, "must be from 1 to"),
        ({"grant_kind": "everything"}, "grant kind 'everything' is unknown"),
    ],
)
def test_bad_quotas_and_kinds_are_refused_with_the_reason(
    sample_catalog: Catalog, facts: dict[str, Any], says: str
) -> None:
    reason = verify_grant(GrantBook(), sample_catalog, **{"grant_kind": "verify", **facts})
    assert reason is not None
    assert says in reason


def test_a_quota_must_be_a_whole_number() -> None:
    ev = event(EventKind.APPROVED, "police", "hrss", quota_per_day=True)
    with pytest.raises(CommandRefused, match="whole number"):
        limits.check_event(ev)


def test_an_applicant_cannot_set_its_own_quota(sample_catalog: Catalog) -> None:
    ev = event(
        EventKind.APPLIED,
        "hrss",
        "hrss",
        application_id="APP-h",
        fields=("name",),
        purpose="p",
        quota_per_day=1000,
    )
    reason = GrantBook().apply(ev, sample_catalog)
    assert reason is not None
    assert "the provider's to set" in reason


def test_a_command_signed_before_these_fields_still_verifies_and_decodes() -> None:
    later = ("grant_kind", "quota_per_second", "quota_per_day", "at_rest")
    ev = event(EventKind.SUBSCRIBED, "hrss", "hrss")
    old_fields = {k: v for k, v in ev.to_avro().items() if k not in later}
    # what an older client signed is what the book verifies now
    assert signing.canonical(ev.signed_fields()) == signing.canonical(old_fields)
    with_quota = event(EventKind.APPROVED, "police", "hrss", quota_per_day=5)
    assert "quota_per_day" in with_quota.signed_fields()  # once set, it is signed

    old = ControlCodec(GRANT_EVENT_V1)
    decoded = GrantEvent.from_avro(GRANT_CODEC.decode(old.encode(old_fields)))
    assert decoded.grant_kind is None
    assert decoded == ev


def test_quotas_count_per_second_and_per_day() -> None:
    grant = Grant("GR-q", "APP-q", "hrss", POP, ("name",), "p", None, {}, None, T0)
    quotas = Quotas()
    limited = replace(grant, quota_per_second=2, quota_per_day=3)
    now = 1_800_000_000.25
    quotas.take(limited, now)
    quotas.take(limited, now)
    with pytest.raises(OverQuota) as second:
        quotas.take(limited, now + 0.1)
    assert second.value.retry_after == 1
    quotas.take(limited, now + 1)
    with pytest.raises(OverQuota) as day:
        quotas.take(limited, now + 2)
    assert day.value.retry_after > 1
    assert "per day" in day.value.message
    quotas.take(grant, now)  # no quota: never refused

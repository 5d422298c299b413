"""The dispute book (疑义校核): who may open, answer and close a dispute; its deadline."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from exchange.avro.jsoncodec import CHINA_TZ
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.sharing.dispute_records import (
    DISPUTE_CODEC,
    Answer,
    DisputeEvent,
    DisputeKind,
    DisputeStatus,
)
from exchange.sharing.disputes import DisputeBook, replay

BMC = "birth_medical_certificate"  # provider health
RID = "0123456789abcdef0123456789abcdef"
FIXED = "fedcba9876543210fedcba9876543210"
DS = "DS-20260928-0000abcd"
#: Monday 2026-09-28, 10:00 in Beijing: the last week before the National Day holiday.
T0 = dt.datetime(2026, 9, 28, 10, 0, tzinfo=CHINA_TZ).astimezone(dt.UTC)
RECEIVED = ("certificate_no", "child_name", "birth_date", "region_code")


def beijing(y: int, m: int, d: int, hh: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, hh, tzinfo=CHINA_TZ).astimezone(dt.UTC)


def opened(**kw: Any) -> DisputeEvent:
    facts: dict[str, Any] = {
        "kind": DisputeKind.OPENED,
        "actor": "police",
        "dispute_id": DS,
        "resource": BMC,
        "at": T0,
        "record_id": RID,
        "fields": ("birth_date",),
        "received_fields": RECEIVED,
        "delivery": f"gov.dlv.police.{BMC} 0:12",
        "answer_within": 5,
        "reason": "出生日期与户籍登记不符",
    }
    return DisputeEvent(**{**facts, **kw})


def answered(answer: Answer = Answer.CORRECTED, **kw: Any) -> DisputeEvent:
    facts: dict[str, Any] = {
        "kind": DisputeKind.ANSWERED,
        "actor": "health",
        "dispute_id": DS,
        "resource": BMC,
        "at": T0 + dt.timedelta(days=1),
        "answer": answer.value,
        "reason": "已核实",
    }
    return DisputeEvent(**{**facts, **kw})


def corrected(**kw: Any) -> DisputeEvent:
    facts: dict[str, Any] = {
        "kind": DisputeKind.CORRECTED,
        "actor": "health",
        "dispute_id": DS,
        "resource": BMC,
        "at": T0 + dt.timedelta(days=2),
        "corrected_record_id": FIXED,
    }
    return DisputeEvent(**{**facts, **kw})


@pytest.fixture
def book() -> DisputeBook:
    return DisputeBook()


def accept(book: DisputeBook, catalog: Catalog, ev: DisputeEvent) -> None:
    assert book.apply(ev, catalog) is None
    assert ev.event_id in book.accepted


def refuse(book: DisputeBook, catalog: Catalog, ev: DisputeEvent) -> str:
    before = dict(book.disputes)
    reason = book.apply(ev, catalog)
    assert reason is not None
    assert book.disputes == before
    assert ev.event_id in book.refused
    return reason


def test_the_whole_cycle_closes_with_a_link_to_the_corrected_record(
    book: DisputeBook, sample_catalog: Catalog
) -> None:
    accept(book, sample_catalog, opened())
    d = book.disputes[DS]
    assert (d.consumer, d.provider, d.status) == ("police", "health", DisputeStatus.OPEN)
    accept(book, sample_catalog, answered())
    assert book.disputes[DS].status is DisputeStatus.ANSWERED
    accept(book, sample_catalog, corrected())
    d = book.disputes[DS]
    assert d.status is DisputeStatus.CLOSED
    assert d.corrected_record_id == FIXED
    assert d.answered_in_time()
    assert "closed: corrected by record" in d.shown_status(T0)


def test_a_correction_without_an_answer_answers_corrected(
    book: DisputeBook, sample_catalog: Catalog
) -> None:
    accept(book, sample_catalog, opened())
    accept(book, sample_catalog, corrected())
    d = book.disputes[DS]
    assert d.answer is Answer.CORRECTED
    assert d.answered_at == corrected().at


def test_a_field_not_received_is_refused_naming_it(
    book: DisputeBook, sample_catalog: Catalog
) -> None:
    reason = refuse(book, sample_catalog, opened(fields=("birth_date", "mother_name")))
    assert "'police' did not receive field(s) mother_name" in reason
    assert RID in reason


def test_a_not_shared_field_cannot_have_been_received(
    book: DisputeBook, sample_catalog: Catalog
) -> None:
    reason = refuse(
        book,
        sample_catalog,
        opened(fields=("birth_weight_grams",), received_fields=(*RECEIVED, "birth_weight_grams")),
    )
    assert "not shared (不予共享)" in reason


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"actor": "health", "delivery": f"gov.dlv.health.{BMC} 0:1"}, "provides"),
        ({"delivery": f"gov.dlv.hrss.{BMC} 0:1"}, "names where 'police' received"),
        ({"record_id": "not-an-id"}, "is not a gov-record-id"),
        ({"fields": ()}, "name the disputed fields"),
        ({"reason": " "}, "reason for the dispute"),
        ({"answer_within": 0}, "answer period"),
        ({"dispute_id": "DS-1"}, "is not of the form"),
        ({"actor": "nobody"}, "nobody"),
    ],
)
def test_an_opening_that_breaks_a_rule_is_refused(
    book: DisputeBook, sample_catalog: Catalog, change: dict[str, Any], expected: str
) -> None:
    assert expected in refuse(book, sample_catalog, opened(**change))


def test_only_the_provider_answers_and_only_once(
    book: DisputeBook, sample_catalog: Catalog
) -> None:
    accept(book, sample_catalog, opened())
    assert "only the provider" in refuse(book, sample_catalog, answered(actor="police"))
    assert "corrected or confirmed" in refuse(
        book, sample_catalog, replace(answered(), answer="maybe")
    )
    accept(book, sample_catalog, answered(Answer.CONFIRMED))
    assert "already answered" in refuse(book, sample_catalog, answered())
    assert "'confirmed'" in refuse(book, sample_catalog, corrected())


def test_an_unknown_dispute_cannot_be_answered(book: DisputeBook, sample_catalog: Catalog) -> None:
    assert "unknown dispute" in refuse(book, sample_catalog, answered())


def test_signed_commands_verify_with_the_registered_key(sample_catalog: Catalog) -> None:
    private, public = signing.generate()
    key = load_pem_private_key(private, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    police = sample_catalog.departments["police"].model_copy(update={"public_key": public})
    catalog = sample_catalog.model_copy(
        update={"departments": {**sample_catalog.departments, "police": police}}
    )
    book = DisputeBook()
    assert "no signature" in refuse(book, catalog, opened())
    ev = opened()
    signed = replace(ev, signature=signing.sign(key, ev.signed_fields()))
    accept(book, catalog, signed)
    forged = opened(dispute_id="DS-20260928-0000ffff", event_id="DE-forged")
    forged = replace(forged, signature=signed.signature)
    assert "does not verify" in refuse(book, catalog, forged)


def test_replay_of_the_encoded_events_gives_the_same_book(sample_catalog: Catalog) -> None:
    events = [opened(), answered(actor="police"), answered(), corrected()]
    live = replay(events, sample_catalog)
    decoded = [
        DisputeEvent.from_avro(DISPUTE_CODEC.decode(DISPUTE_CODEC.encode(e.to_avro())))
        for e in events
    ]
    again = replay(decoded, sample_catalog)
    assert again.disputes == live.disputes
    assert again.refused == live.refused


def test_the_deadline_counts_official_working_days_across_national_day(
    book: DisputeBook, sample_catalog: Catalog
) -> None:
    accept(book, sample_catalog, opened())
    d = book.disputes[DS]
    # Mon 28 Sep: 29 and 30 Sep, then 1-7 Oct is the holiday, Sat 10 Oct a make-up working
    # day (调休): 29, 30, 8, 9, 10. Monday to Friday counting would say Mon 5 Oct.
    assert d.due() == dt.date(2026, 10, 10)
    assert not d.overdue(beijing(2026, 10, 5))
    assert not d.overdue(beijing(2026, 10, 10, 23))
    assert d.overdue(beijing(2026, 10, 11))
    accept(book, sample_catalog, answered(at=beijing(2026, 10, 12)))
    late = book.disputes[DS]
    assert not late.answered_in_time()
    assert late.overdue(beijing(2027, 1, 1))
    assert "(late)" in late.shown_status(beijing(2027, 1, 1))

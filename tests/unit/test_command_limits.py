"""What a command may carry: ids, free text, fields, masks, expiry, row filters."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange.catalog.model import Catalog
from exchange.errors import CommandRefused
from exchange.sharing import limits
from exchange.sharing.records import EventKind, GrantEvent

NOT_UTF8 = b"ab\xffc".decode("utf-8", "surrogateescape")


def refusal(call: object, *args: object, **kw: object) -> str:
    with pytest.raises(CommandRefused) as info:
        call(*args, **kw)  # type: ignore[operator]
    return str(info.value)


@pytest.mark.parametrize(
    "value", ["police", "APP-20260101-0a1b2c3d", "出生医学证明", "x" * limits.MAX_ID_CHARS]
)
def test_good_ids_pass(value: str) -> None:
    limits.check_id(value, "id")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "the id is empty"),
        ("  ", "the id is empty"),
        ("x" * 201, "the id 'xxx"),
        (
            "a\x00b",
            "the id 'a\\x00b' contains the control or format character U+0000 at position 1",
        ),
        ("a\tb", "the id 'a\\tb' contains the control or format character U+0009"),
        ("a\u200bb", "the id 'a\\u200bb' contains the control or format character U+200B"),
        (
            NOT_UTF8,
            "the id 'ab\\udcffc' contains a lone surrogate U+DCFF (bytes that are not UTF-8)",
        ),
        (42, "the id must be text, not int"),
    ],
)
def test_bad_ids_are_refused(value: object, expected: str) -> None:
    message = refusal(limits.check_id, value, "id")
    assert message.startswith(expected), message
    assert len(message) < 200


def test_free_text_allows_tabs_and_newlines_up_to_the_limit() -> None:
    limits.check_text("落户登记\n\tline two", "purpose")
    limits.check_text("字" * 2000, "purpose")
    limits.check_text(None, "purpose")
    assert refusal(limits.check_text, "字" * 2001, "purpose") == (
        "purpose is 2001 characters long; at most 2000 are allowed"
    )
    assert "U+001B at position 2" in refusal(limits.check_text, "ab\x1b[0m", "purpose")
    assert "U+202E" in refusal(limits.check_text, "ab\u202e", "purpose")


def test_fields_and_masks() -> None:
    limits.check_fields(["mother_name", "address"])
    assert "501 fields named" in refusal(limits.check_fields, [f"f{i}" for i in range(501)])
    assert "as a list" in refusal(limits.check_fields, "mother_name")
    limits.check_masks({"mother_name": "surname"})
    assert "the mask rule for 'mother_name' is 201" in refusal(
        limits.check_masks, {"mother_name": "k" * 201}
    )


def test_an_expiry_needs_a_time_zone() -> None:
    limits.check_until(dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    assert "has no time zone" in refusal(limits.check_until, dt.datetime(2099, 1, 1))
    assert "not str" in refusal(limits.check_until, "2099-01-01")


@pytest.mark.parametrize(
    ("expression", "gives"),
    [("mother_name", "str"), ("size(mother_name)", "int"), ("[mother_name]", "list")],
)
def test_a_row_filter_that_is_not_a_condition_is_refused(
    sample_catalog: Catalog, expression: str, gives: str
) -> None:
    res = sample_catalog.resource("birth_medical_certificate")
    message = refusal(limits.check_row_filter, expression, res)
    assert message.startswith(f"row filter refused: it gives {gives} "), message


@pytest.mark.parametrize(
    "expression",
    [
        'mother_name.startsWith("张")',
        "mother_name == null || size(mother_name) > 1",
        "true",
        "not a filter (",  # left to the grant book, which says why it does not compile
    ],
)
def test_conditions_are_left_alone(sample_catalog: Catalog, expression: str) -> None:
    limits.check_row_filter(expression, sample_catalog.resource("birth_medical_certificate"))


def test_shown_and_safe_quote_escaped_and_short() -> None:
    assert limits.shown("abc") == "'abc'"
    assert limits.shown("x" * 1000) == repr("x" * limits.MAX_SHOWN) + "…"
    assert limits.safe("落户 registration", 100) == "落户 registration"
    assert limits.safe("a\nb", 100) == "a\nb"
    assert limits.safe("a\x00b", 100) == "'a\\x00b'"
    assert limits.safe(NOT_UTF8, 100).encode("utf-8")
    assert len(limits.safe("y" * 10_000, 2000)) < 200


def test_check_event_covers_every_text_of_a_command() -> None:
    base = GrantEvent(
        kind=EventKind.APPROVED,
        actor="health",
        consumer="police",
        resource="birth_medical_certificate",
        application_id="APP-1",
        grant_id="GR-1",
        fields=("mother_name",),
        purpose="落户",
    )
    limits.check_event(base)
    for change, expected in [
        ({"actor": "he\x00alth"}, "the department"),
        ({"consumer": NOT_UTF8}, "the consumer"),
        ({"purpose": "p" * 2001}, "the purpose of use"),
        ({"reason": "\x1b"}, "the reason"),
        ({"legal_basis": NOT_UTF8}, "the legal basis"),
        ({"row_filter": "x" * 2001}, "the row filter"),
        ({"masks": {"m\n": "surname"}}, "the masked field"),
        ({"valid_until": dt.datetime(2099, 1, 1)}, "valid-until"),
        ({"fields": ("f" * 201,)}, "the field"),
    ]:
        event = GrantEvent(**{**base.__dict__, **change})
        assert refusal(limits.check_event, event).startswith(expected), change

"""Normalisation a schema declares per field, on values as departments write them (issue 26)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.cells import from_typed, number_text
from connectors.mapping import field_type
from connectors.normalise import Normaliser, RuleError, declared, excel_serial, iso_date

DATE = {"type": "int", "logicalType": "date"}


@pytest.mark.parametrize(
    ("rule", "raw", "expected"),
    [
        ("half_width", "３３０１０２", "330102"),  # a region code typed with a Chinese IME
        ("half_width", "ＭＡ２Ｆ３Ｋ８Ｘ", "MA2F3K8X"),
        ("half_width", "浙江省杭州市（上城区）１号", "浙江省杭州市(上城区)1号"),
        ("half_width", "王　芳", "王 芳"),  # the ideographic space becomes an ordinary one
        ("trim", "　王芳 ", "王芳"),  # full-width and ordinary spaces at both ends
        ("trim", "\t330102199001011234\u00a0", "330102199001011234"),
        ("trim", "王 芳", "王 芳"),  # spaces inside are the value's own
        ("id_check_letter", "11010519491231002x", "11010519491231002X"),
        ("id_check_letter", "11010519491231002X", "11010519491231002X"),
        ("id_check_letter", "x1010519491231002x", "x1010519491231002x"),  # not an ID number
        ("date", "2024年3月5日", "2024-03-05"),
        ("date", "2024 年 12 月 31 日", "2024-12-31"),
        ("date", "2024/3/5", "2024-03-05"),
        ("date", "2024.3.5", "2024-03-05"),
        ("date", "2024-3-5", "2024-03-05"),
        ("date", "20240305", "2024-03-05"),
        ("date", "45356", "2024-03-05"),  # an Excel serial exported as text
        ("date", 45356, "2024-03-05"),  # and as a number cell
        ("date", 45356.0, "2024-03-05"),
        ("date", "2024-03-05", "2024-03-05"),
    ],
)
def test_each_rule_on_real_looking_values(rule: str, raw: Any, expected: str) -> None:
    n = Normaliser({"f": (rule,)})
    assert n.apply("f", raw) == expected
    assert n.counts[rule] == (0 if raw == expected else 1)


def test_rules_run_in_a_fixed_order_and_count_what_they_changed() -> None:
    n = Normaliser({"id": ("half_width", "trim", "id_check_letter"), "d": ("half_width", "date")})
    # full-width digits and a full-width x, padded with ideographic spaces
    assert n.apply("id", "　１１０１０５１９４９１２３１００２ｘ　") == "11010519491231002X"
    assert n.apply("d", "２０２４年３月５日") == "2024-03-05"
    assert n.apply("other", " left alone ") == " left alone "
    assert n.apply("id", None) is None
    assert dict(n.counts) == {"half_width": 2, "trim": 1, "id_check_letter": 1, "date": 1}


def test_a_date_that_is_no_date_of_the_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="not a date of the calendar"):
        iso_date("2024年2月30日")
    with pytest.raises(ValueError, match="not an Excel date serial number"):
        iso_date(9_999_999)
    assert iso_date("昨天") == "昨天"  # left for the schema check to refuse, with its row


def test_excel_serials_follow_excels_calendar() -> None:
    assert excel_serial(1) == dt.date(1900, 1, 1)
    assert excel_serial(59) == dt.date(1900, 2, 28)
    assert excel_serial(61) == dt.date(1900, 3, 1)  # after Excel's 29 February 1900
    assert excel_serial(45356) == dt.date(2024, 3, 5)


def test_a_schema_declares_rules_per_field_and_wrong_ones_are_named() -> None:
    schema = {
        "fields": [
            {"name": "id_number", "type": "string", "normalise": ["id_check_letter", "trim"]},
            {"name": "approved", "type": DATE, "normalise": "date"},
            {"name": "plain", "type": "string"},
        ]
    }
    assert declared(schema) == {"id_number": ("trim", "id_check_letter"), "approved": ("date",)}
    with pytest.raises(RuleError, match="field 'n': unknown normalisation 'fold'"):
        declared({"fields": [{"name": "n", "type": "string", "normalise": ["fold"]}]})
    with pytest.raises(RuleError, match="'id_check_letter' does not apply to int"):
        declared({"fields": [{"name": "n", "type": "int", "normalise": ["id_check_letter"]}]})


# --- typed worksheet cells ------------------------------------------------------------------


def test_numbers_in_text_fields_keep_the_digits_a_person_typed() -> None:
    text = field_type("string")
    assert from_typed("0571", text) == "0571"  # a text cell keeps its leading zero
    assert from_typed(330102, text) == "330102"
    assert from_typed(330102.0, text) == "330102"  # no spurious .0
    assert from_typed(3.25, text) == "3.25"
    assert number_text(123456789012345) == "123456789012345"
    with pytest.raises(ValueError, match="more digits than Excel keeps"):
        from_typed(330102199001011234, text)  # an ID number typed as a number: digits lost
    with pytest.raises(ValueError, match="format the column as text"):
        from_typed(3.30102199001011e17, text)


def test_typed_cells_feed_typed_fields() -> None:
    assert from_typed(dt.datetime(2024, 3, 5), field_type(DATE)) == "2024-03-05"
    ts = field_type({"type": "long", "logicalType": "timestamp-millis"})
    assert from_typed(dt.datetime(2024, 3, 5, 9, 30), ts) == "2024-03-05T09:30:00"
    money = field_type({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2})
    assert from_typed(1153.42, money) == "1153.42"
    assert from_typed(3, field_type("int")) == 3
    with pytest.raises(ValueError, match="not an integer"):
        from_typed(3.5, field_type("int"))
    with pytest.raises(ValueError, match="declare the 'date' normalisation"):
        from_typed(45356, field_type(DATE))
    with pytest.raises(ValueError, match="has a time of day"):
        from_typed(dt.datetime(2024, 3, 5, 9, 30), field_type(DATE))

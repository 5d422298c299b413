"""Field masks: what a provider asks for is what a consumer receives."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest

from exchange.enforce.masks import (
    KNOWN_RULES,
    MaskError,
    MaskSpec,
    check_applicable,
    compile_mask,
    consumer_key,
    parse_mask,
)
from exchange.errors import ExchangeError

SECRET = b"test master secret, 32 bytes ok!"
ID_NUMBER = "330102199001011234"
DATE = {"type": "int", "logicalType": "date"}
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def key(consumer: str = "health", resource: str = "population_basic") -> bytes:
    return consumer_key(SECRET, consumer, resource)


def mask(spec: str, value: Any, consumer: str = "health") -> str | None:
    return compile_mask(parse_mask(spec), key(consumer))(value)


# ------------------------------------------------------------------ keep


def test_keep_shows_first_and_last_characters_of_an_id_number() -> None:
    assert mask("keep:6:4", ID_NUMBER) == "330102********1234"


def test_keep_counts_characters_not_bytes() -> None:
    assert mask("keep:1:1", "欧阳娜娜") == "欧**娜"


def test_keep_masks_a_value_too_short_to_hide_anything_completely() -> None:
    assert mask("keep:6:4", "12345") == "*****"
    assert mask("keep:6:4", "1234567890") == "**********"
    assert mask("keep:6:4", "12345678901") == "123456*8901"


def test_keep_zero_masks_everything_and_keeps_the_length() -> None:
    assert mask("keep:0:0", "abc") == "***"
    assert mask("keep:3:0", "abcdef") == "abc***"
    assert mask("keep:0:2", "abcdef") == "****ef"


def test_keep_converts_non_text_values_as_the_json_form_shows_them() -> None:
    assert mask("keep:4:0", dt.date(1990, 1, 1)) == "1990******"
    assert mask("keep:2:2", decimal.Decimal("1234.50")) == "12***50"
    assert mask("keep:1:1", 123456) == "1****6"
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert mask("keep:10:0", ts) == "2026-01-02" + "*" * 19  # 2026-01-02T11:04:05.000+08:00


# ---------------------------------------------------------------- replace


def test_replace_defaults_to_three_stars_and_accepts_a_text_with_colons() -> None:
    assert mask("replace", ID_NUMBER) == "***"
    assert mask("replace:已隐藏", ID_NUMBER) == "已隐藏"
    assert mask("replace:a:b", 5) == "a:b"
    assert str(parse_mask("replace:a:b")) == "replace:a:b"


# ------------------------------------------------------------------- hash


def test_hash_is_stable_for_one_consumer() -> None:
    first = mask("hash", ID_NUMBER, consumer="health")
    again = compile_mask(parse_mask("hash"), key("health"))(ID_NUMBER)
    assert first == again
    assert first is not None
    assert len(first) == 32
    assert int(first, 16) >= 0


def test_hash_differs_between_consumers_so_they_cannot_join() -> None:
    assert mask("hash", ID_NUMBER, consumer="health") != mask("hash", ID_NUMBER, consumer="hrss")


def test_hash_differs_between_resources_and_inputs() -> None:
    assert key("health", "a") != key("health", "b")
    assert mask("hash", ID_NUMBER) != mask("hash", ID_NUMBER[:-1] + "5")


def test_hash_key_derivation_cannot_be_confused_by_names() -> None:
    assert key("ab", "c") != key("a", "bc")


def test_hash_accepts_every_avro_value() -> None:
    values = [5, 1.5, True, b"\x00\xff", dt.date(2020, 1, 1), decimal.Decimal("1.50"), [1, 2]]
    hashes = {mask("hash", v) for v in values}
    assert len(hashes) == len(values)


def test_master_secret_must_not_be_guessable() -> None:
    with pytest.raises(MaskError, match="at least 16 bytes"):
        consumer_key(b"short", "health", "population_basic")


def test_hash_needs_a_key() -> None:
    with pytest.raises(MaskError, match="consumer key"):
        compile_mask(parse_mask("hash"), b"")


# ------------------------------------------------------------- year, surname


def test_year_of_a_date() -> None:
    assert mask("year", dt.date(1990, 1, 1)) == "1990"


def test_year_of_a_timestamp_is_the_year_in_china() -> None:
    assert mask("year", dt.datetime(1990, 6, 1, tzinfo=dt.UTC)) == "1990"
    # 20:00 UTC on New Year's Eve is already 1990 in Beijing.
    assert mask("year", dt.datetime(1989, 12, 31, 20, tzinfo=dt.UTC)) == "1990"


def test_year_refuses_a_value_that_is_no_date() -> None:
    with pytest.raises(MaskError, match="date or timestamp"):
        mask("year", "1990-01-01")


def test_surname_keeps_the_first_character() -> None:
    assert mask("surname", "张三丰") == "张**"
    assert mask("surname", "欧阳修") == "欧**"
    assert mask("surname", "李") == "李"
    assert mask("surname", "") == ""


# ------------------------------------------------------------ null, strings


@pytest.mark.parametrize("spec", ["keep:6:4", "replace", "replace:x", "hash", "year", "surname"])
def test_null_stays_null(spec: str) -> None:
    assert mask(spec, None) is None


def test_masked_values_are_strings() -> None:
    assert mask("keep:1:1", 12345) == "1***5"
    assert mask("replace", 12345) == "***"
    assert isinstance(mask("hash", 12345), str)


# ------------------------------------------------------------------ parsing


def test_parse_and_print_round_trip_in_canonical_form() -> None:
    spec = parse_mask(" KEEP:06:4 ")
    assert spec == MaskSpec("keep", ("6", "4"))
    assert str(spec) == "keep:6:4"
    assert parse_mask(str(spec)) == spec
    assert str(parse_mask("hash")) == "hash"


def test_describe_is_readable_and_names_the_spec() -> None:
    assert parse_mask("keep:6:4").describe() == (
        "masked: keep first 6 and last 4 characters (keep:6:4)"
    )
    assert "(year)" in parse_mask("year").describe()
    assert "'***'" in parse_mask("replace").describe()
    for rule in KNOWN_RULES:
        spec = parse_mask("keep:1:1" if rule == "keep" else rule)
        assert spec.describe().startswith("masked: ")


def test_unknown_rule_lists_the_known_ones() -> None:
    with pytest.raises(MaskError) as info:
        parse_mask("blur:3")
    message = str(info.value)
    assert "'blur'" in message
    for rule in KNOWN_RULES:
        assert rule in message
    assert isinstance(info.value, ExchangeError)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty"),
        ("keep", "takes 2 parameters, got 0"),
        ("keep:6", "takes 2 parameters, got 1"),
        ("keep:6:4:2", "takes 2 parameters, got 3"),
        ("keep:a:4", "whole number from 0 to 999, got 'a'"),
        ("keep:6:-4", "got '-4'"),
        ("keep:1000:4", "got 1000"),
        ("keep:６:4", "got '６'"),  # a full-width digit is not a number here
        ("keep: 6:4", "got ' 6'"),
        ("hash:sha1", "takes no parameters"),
        ("year:2", "takes no parameters"),
        ("surname:2", "takes no parameters"),
        ("replace:" + "x" * 201, "limit is 200"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(spec: str, reason: str) -> None:
    with pytest.raises(MaskError, match=reason.replace("(", r"\(")):
        parse_mask(spec)


def test_a_spec_built_directly_is_checked_too() -> None:
    with pytest.raises(MaskError, match="takes 2 parameters"):
        MaskSpec("keep", ("6",))
    with pytest.raises(MaskError, match="unknown mask rule"):
        MaskSpec("nope")


# ------------------------------------------------------------ applicability


@pytest.mark.parametrize(
    "avro_type", [DATE, ["null", DATE], TIMESTAMP, ["null", TIMESTAMP]], ids=str
)
def test_year_applies_to_dates_and_timestamps(avro_type: Any) -> None:
    check_applicable(parse_mask("year"), avro_type, "birth_date")


def test_year_on_a_string_field_is_refused_naming_the_field() -> None:
    with pytest.raises(MaskError, match=r"field 'name'.*'year'.*string") as info:
        check_applicable(parse_mask("year"), "string", "name")
    assert info.value.field == "name"


def test_surname_needs_a_string_field() -> None:
    check_applicable(parse_mask("surname"), ["null", "string"], "name")
    with pytest.raises(MaskError, match="field 'birth_date'"):
        check_applicable(parse_mask("surname"), DATE, "birth_date")


@pytest.mark.parametrize(
    "avro_type",
    [
        "string",
        "long",
        ["null", "string"],
        DATE,
        TIMESTAMP,
        {"type": "enum", "name": "G", "symbols": ["M", "F"]},
        {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
    ],
    ids=str,
)
def test_keep_applies_to_text_like_fields(avro_type: Any) -> None:
    check_applicable(parse_mask("keep:1:1"), avro_type, "f")


@pytest.mark.parametrize(
    "avro_type",
    ["bytes", "boolean", {"type": "array", "items": "string"}, ["null", "string", "long"]],
    ids=str,
)
def test_keep_refuses_binary_boolean_and_composite_fields(avro_type: Any) -> None:
    with pytest.raises(MaskError, match="field 'f'"):
        check_applicable(parse_mask("keep:1:1"), avro_type, "f")


@pytest.mark.parametrize("avro_type", ["bytes", "boolean", {"type": "array", "items": "int"}])
def test_replace_and_hash_apply_to_everything(avro_type: Any) -> None:
    check_applicable(parse_mask("replace"), avro_type, "f")
    check_applicable(parse_mask("hash"), avro_type, "f")

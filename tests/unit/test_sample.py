"""Sample data from any Avro schema: valid, reproducible, realistic, consistent.

The generator knows no catalog: every test here builds its own schema, and the
last group runs over whatever ``schemas/avro/*.avsc`` files exist.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from exchange.avro import jsoncodec
from exchange.dev import sample
from exchange.errors import SchemaError

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"
AVSC_FILES = sorted(AVRO_DIR.glob("*.avsc"))

CHINESE_NAME = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
MOBILE = re.compile(r"^1[3-9]\d{9}$")
REAL_REGION_CODES = {r.code for r in sample._REGIONS}

DECIMAL_MONEY = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}

ALL_TYPES: dict[str, Any] = {
    "type": "record",
    "name": "AllTypes",
    "namespace": "test.sample",
    "fields": [
        {"name": "certificate_no", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "id_number", "type": "string"},
        {
            "name": "gender",
            "type": {
                "type": "enum",
                "name": "Gender",
                "namespace": "test.sample",
                "symbols": ["UNKNOWN", "MALE", "FEMALE"],
            },
        },
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "age", "type": "int"},
        {"name": "phone", "type": ["null", "string"]},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "address", "type": "string"},
        {"name": "region_code", "type": "string"},
        {"name": "credit_code", "type": "string"},
        {"name": "company_name", "type": "string"},
        {"name": "hospital_name", "type": ["null", "string"]},
        {"name": "amount", "type": DECIMAL_MONEY},
        {
            "name": "small_rate",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 3},
        },
        {
            "name": "fixed_amount",
            "type": {
                "type": "fixed",
                "name": "Money8",
                "size": 8,
                "logicalType": "decimal",
                "precision": 16,
                "scale": 2,
            },
        },
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "checked_at",
            "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
        },
        {"name": "approval_date", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "is_valid", "type": "boolean"},
        {"name": "visit_count", "type": "long"},
        {"name": "birth_weight", "type": "int"},
        {"name": "score", "type": "double"},
        {"name": "temperature", "type": "float"},
        {"name": "photo", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Sha256", "size": 32}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "phones", "type": {"type": "array", "items": "string"}},
        {"name": "attributes", "type": {"type": "map", "values": "long"}},
        {
            "name": "mother",
            "type": {
                "type": "record",
                "name": "Parent",
                "fields": [
                    {"name": "name", "type": "string"},
                    {"name": "id_number", "type": "string"},
                    {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
                ],
            },
        },
        {"name": "father", "type": ["null", "Parent"]},
        {"name": "request_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "status", "type": "test.sample.Gender"},
    ],
}

PEOPLE: dict[str, Any] = {
    "type": "record",
    "name": "BirthRecord",
    "fields": [
        {"name": "child_name", "type": "string"},
        {"name": "gender", "type": "string"},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "child_id_number", "type": ["null", "string"]},
        {"name": "mother_name", "type": "string"},
        {"name": "mother_id_number", "type": "string"},
        {"name": "mother_birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "father_name", "type": "string"},
        {"name": "father_id_number", "type": "string"},
        {"name": "father_gender", "type": "int"},
        {"name": "issued_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}

UNKNOWN: dict[str, Any] = {
    "type": "record",
    "name": "Zq7",
    "fields": [
        {"name": "foo", "type": "string"},
        {"name": "barBaz", "type": ["null", "long", "string"]},
        {"name": "q", "type": "double"},
        {"name": "zz_top", "type": {"type": "array", "items": {"type": "map", "values": "int"}}},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x1", "type": "float"},
                    {"name": "x2", "type": ["null", "bytes"]},
                    {"name": "x3", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
                ],
            },
        },
        {"name": "more", "type": {"type": "array", "items": "Inner"}},
        {"name": "nothing", "type": "null"},
        {"name": "flag", "type": "boolean"},
    ],
}

LINKED_LIST: dict[str, Any] = {
    "type": "record",
    "name": "Node",
    "fields": [
        {"name": "value", "type": "int"},
        {"name": "next", "type": ["null", "Node"]},
        {"name": "children", "type": {"type": "array", "items": "Node"}},
    ],
}


def assert_valid(schema: dict[str, Any], records: list[dict[str, Any]]) -> None:
    parsed = fastavro.parse_schema(copy.deepcopy(schema))
    for record in records:
        assert validate(record, parsed, raise_errors=True)


def assert_round_trips(schema: dict[str, Any], records: list[dict[str, Any]]) -> None:
    for record in records:
        line = jsoncodec.dumps(record)
        assert "\n" not in line
        assert jsoncodec.from_json(schema, json.loads(line)) == record


# -- reproducibility ------------------------------------------------------------


def test_same_seed_same_records() -> None:
    assert sample.generate(ALL_TYPES, 40, seed=7) == sample.generate(ALL_TYPES, 40, seed=7)


def test_different_seed_different_records() -> None:
    a = sample.generate(ALL_TYPES, 20, seed=1)
    b = sample.generate(ALL_TYPES, 20, seed=2)
    assert a != b
    assert {r["id_number"] for r in a}.isdisjoint({r["id_number"] for r in b})


def test_default_seed_is_zero() -> None:
    assert sample.generate(ALL_TYPES, 5) == sample.generate(ALL_TYPES, 5, seed=0)


def test_more_records_extend_fewer() -> None:
    assert sample.generate(ALL_TYPES, 30, seed=3)[:10] == sample.generate(ALL_TYPES, 10, seed=3)


def test_adding_a_field_leaves_other_fields_alone() -> None:
    wider = copy.deepcopy(ALL_TYPES)
    wider["fields"].insert(3, {"name": "remark", "type": "string"})
    before = sample.generate(ALL_TYPES, 20, seed=5)
    after = sample.generate(wider, 20, seed=5)
    for old, new in zip(before, after, strict=True):
        assert {k: v for k, v in new.items() if k != "remark"} == old


def test_records_are_distinct_and_varied() -> None:
    records = sample.generate(ALL_TYPES, 50, seed=0)
    assert len({r["id_number"] for r in records}) == 50
    assert len({r["name"] for r in records}) > 40
    assert len({r["region_code"] for r in records}) > 5


def test_other_resources_get_other_values_from_the_same_seed() -> None:
    renamed = copy.deepcopy(ALL_TYPES)
    renamed["name"] = "SomethingElse"
    a = sample.generate(ALL_TYPES, 10, seed=0)
    b = sample.generate(renamed, 10, seed=0)
    assert [r["certificate_no"] for r in a] != [r["certificate_no"] for r in b]


def test_json_lines_are_the_generated_records() -> None:
    lines = list(sample.iter_json_lines(ALL_TYPES, 15, 9))
    assert lines == [jsoncodec.dumps(r) for r in sample.generate(ALL_TYPES, 15, seed=9)]
    assert lines == list(sample.iter_json_lines(ALL_TYPES, 15, seed=9))


# -- validity -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_every_type_is_valid_avro(seed: int) -> None:
    assert_valid(ALL_TYPES, sample.generate(ALL_TYPES, 150, seed=seed))


def test_every_type_round_trips_through_json() -> None:
    assert_round_trips(ALL_TYPES, sample.generate(ALL_TYPES, 150, seed=4))


def test_every_type_survives_avro_binary() -> None:
    records = sample.generate(ALL_TYPES, 50, seed=8)
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(copy.deepcopy(ALL_TYPES)), records)
    buf.seek(0)
    back = list(fastavro.reader(buf))
    for r in back:  # fastavro reads a uuid back as uuid.UUID; jsoncodec keeps text
        r["request_id"] = str(r["request_id"])
    assert back == records


def test_python_forms_of_logical_types() -> None:
    for r in sample.generate(ALL_TYPES, 100, seed=2):
        assert type(r["birth_date"]) is dt.date
        ts = r["created_at"]
        assert isinstance(ts, dt.datetime)
        assert ts.utcoffset() == dt.timedelta(hours=8)
        assert ts.microsecond % 1000 == 0
        assert dt.datetime(2024, 1, 1, tzinfo=jsoncodec.CHINA_TZ) <= ts
        assert ts < dt.datetime(2027, 1, 1, tzinfo=jsoncodec.CHINA_TZ)
        for key, precision, scale in (("amount", 12, 2), ("small_rate", 3, 3)):
            d = r[key]
            assert isinstance(d, decimal.Decimal)
            assert d.as_tuple().exponent == -scale
            assert len(d.as_tuple().digits) <= precision
        assert isinstance(r["photo"], bytes)
        assert len(r["digest"]) == 32
        assert r["gender"] in ("MALE", "FEMALE")
        assert r["status"] in ("UNKNOWN", "MALE", "FEMALE")
        assert 1 <= len(r["tags"]) <= 3
        assert 1 <= len(r["attributes"]) <= 3
        assert all(isinstance(v, int) for v in r["attributes"].values())
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", r["request_id"]
        )


def test_nullable_fields_are_sometimes_null_but_never_in_the_first_records() -> None:
    records = sample.generate(ALL_TYPES, 400, seed=0)
    nullable = ["phone", "email", "hospital_name", "checked_at", "approval_date", "father"]
    for r in records[:3]:
        assert all(r[k] is not None for k in nullable)
    for k in nullable:
        share = sum(r[k] is None for r in records) / len(records)
        assert 0.03 < share < 0.2, (k, share)
    required = [f["name"] for f in ALL_TYPES["fields"] if not isinstance(f["type"], list)]
    assert all(r[k] is not None for r in records for k in required)


def test_unknown_schema_with_arbitrary_names() -> None:
    records = sample.generate(UNKNOWN, 100, seed=11)
    assert_valid(UNKNOWN, records)
    assert_round_trips(UNKNOWN, records)
    assert all(r["nothing"] is None for r in records)
    # a union of several types takes its first branch, which reads back as itself
    assert all(isinstance(r["barBaz"], int) for r in records if r["barBaz"] is not None)


def test_recursive_schema_terminates() -> None:
    records = sample.generate(LINKED_LIST, 20, seed=0)
    assert_valid(LINKED_LIST, records)
    assert_round_trips(LINKED_LIST, records)


def test_no_records_and_bad_arguments() -> None:
    assert sample.generate(ALL_TYPES, 0) == []
    assert list(sample.iter_json_lines(ALL_TYPES, 0, 0)) == []
    with pytest.raises(ValueError, match="count"):
        sample.generate(ALL_TYPES, -1)
    with pytest.raises(SchemaError):
        sample.generate({"type": "record", "name": "Bad", "fields": [{"name": "x"}]}, 1)


# -- check digits ---------------------------------------------------------------------


def test_id_check_digit_known_vectors() -> None:
    assert sample.id_check_digit("11010519491231002") == "X"
    assert sample.id_check_digit("44052418800101001") == "4"
    assert sample.is_valid_id_number("11010519491231002X")
    assert sample.is_valid_id_number("440524188001010014")


@pytest.mark.parametrize(
    "bad",
    [
        "110105194912310021",  # wrong check digit
        "11010519491231002x",  # the standard writes X in upper case
        "11010519491331002X",  # month 13
        "11010519491231002",  # 17 characters
        "1101051949123100２X",  # a full-width digit
        "",
    ],
)
def test_invalid_id_numbers(bad: str) -> None:
    assert not sample.is_valid_id_number(bad)


def test_id_check_digit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="17 digits"):
        sample.id_check_digit("1101051949123100")
    with pytest.raises(ValueError, match="17 digits"):
        sample.id_check_digit("1101051949123100A")


def test_credit_code_known_vector() -> None:
    assert sample.credit_code_check("91350100M000100Y4") == "3"
    assert sample.is_valid_credit_code("91350100M000100Y43")


@pytest.mark.parametrize(
    "bad",
    ["91350100M000100Y44", "91350100M000100Y4", "91350100I000100Y43", "91350100m000100Y43", ""],
)
def test_invalid_credit_codes(bad: str) -> None:
    assert not sample.is_valid_credit_code(bad)


def test_credit_code_check_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="17 characters"):
        sample.credit_code_check("91350100O00100Y4O")


# -- realism and consistency ------------------------------------------------------------


def test_id_numbers_agree_with_birth_date_and_gender() -> None:
    records = sample.generate(ALL_TYPES, 200, seed=6)
    for r in records:
        idn = r["id_number"]
        assert sample.is_valid_id_number(idn)
        assert idn[:6] in REAL_REGION_CODES
        assert idn[6:14] == r["birth_date"].strftime("%Y%m%d")
        assert (int(idn[16]) % 2 == 1) == (r["gender"] == "MALE")
        mother = r["mother"]
        assert sample.is_valid_id_number(mother["id_number"])
        assert mother["id_number"][6:14] == mother["birth_date"].strftime("%Y%m%d")
        assert int(mother["id_number"][16]) % 2 == 0  # a mother is a woman
        if r["father"] is not None:
            assert int(r["father"]["id_number"][16]) % 2 == 1


def test_people_in_one_record_are_told_apart_by_prefix() -> None:
    records = sample.generate(PEOPLE, 200, seed=0)
    assert_valid(PEOPLE, records)
    for r in records:
        assert r["gender"] in ("男", "女")
        child = r["child_id_number"]
        if child is not None:
            assert child[6:14] == r["birth_date"].strftime("%Y%m%d")
            assert (int(child[16]) % 2 == 1) == (r["gender"] == "男")
        mother = r["mother_id_number"]
        assert mother[6:14] == r["mother_birth_date"].strftime("%Y%m%d")
        assert int(mother[16]) % 2 == 0
        father = r["father_id_number"]
        assert int(father[16]) % 2 == 1
        assert r["father_gender"] == 1  # GB/T 2261.1 code for male
        # a newborn, certified after birth, with parents of an age to have one
        assert r["birth_date"] <= r["issued_at"].date()
        assert r["birth_date"] - r["mother_birth_date"] > dt.timedelta(days=365 * 18)
        assert 1940 <= int(father[6:10]) <= 2025
        for key in ("child_name", "mother_name", "father_name"):
            assert CHINESE_NAME.match(r[key]), r[key]


def test_credit_codes_are_valid() -> None:
    from exchange.catalog.model import CREDIT_CODE

    for r in sample.generate(ALL_TYPES, 200, seed=1):
        assert sample.is_valid_credit_code(r["credit_code"])
        assert CREDIT_CODE.match(r["credit_code"])
        assert r["credit_code"][2:8] in REAL_REGION_CODES


def test_values_look_like_what_the_field_names_say() -> None:
    records = sample.generate(ALL_TYPES, 200, seed=3)
    for r in records:
        assert CHINESE_NAME.match(r["name"]), r["name"]
        assert r["phone"] is None or MOBILE.match(r["phone"])
        assert all(MOBILE.match(p) for p in r["phones"])
        assert r["email"] is None or re.fullmatch(r"[a-z0-9]+@[a-z0-9.]+", r["email"])
        assert r["region_code"] in REAL_REGION_CODES
        assert r["address"].endswith(("号", "室"))
        assert re.match(r"^[\u4e00-\u9fff]+(省|市)", r["address"])
        assert r["company_name"].endswith("公司")
        assert r["hospital_name"] is None or r["hospital_name"].endswith(("医院", "保健院"))
        assert re.fullmatch(r"C\d{9}", r["certificate_no"])
        assert 0 <= r["age"] <= 100
        assert 2500 <= r["birth_weight"] <= 4200
        assert 36.0 <= r["temperature"] <= 37.5
        assert 0 <= r["score"] <= 100
        assert dt.date(1940, 1, 1) <= r["birth_date"] <= dt.date(2025, 12, 31)
        d = r["approval_date"]
        assert d is None or dt.date(2015, 1, 1) <= d <= dt.date(2026, 12, 31)
        assert r["photo"].startswith(b"\xff\xd8")  # a JPEG header for a photo
    # the region code, address and ID numbers of one record mostly agree
    same = sum(r["address"].startswith(_region_full(r["region_code"])) for r in records)
    assert same == len(records)
    assert sum(r["id_number"][:6] == r["region_code"] for r in records) > len(records) / 2


def test_doc_explains_opaque_field_names() -> None:
    schema = {
        "type": "record",
        "name": "Legacy",
        "fields": [
            {"name": "zd1", "type": "string", "doc": "公民身份号码"},
            {"name": "zd2", "type": "string", "doc": "联系电话"},
            {"name": "zd3", "type": "string", "doc": "统一社会信用代码"},
            {"name": "zd4", "type": "string", "doc": "登记证号（如 J330106-2024-001234）"},
        ],
    }
    for r in sample.generate(schema, 30, seed=0):
        assert sample.is_valid_id_number(r["zd1"])
        assert MOBILE.match(r["zd2"])
        assert sample.is_valid_credit_code(r["zd3"])
        assert re.fullmatch(r"J\d{6}-20\d\d-\d{6}", r["zd4"])


def _region_full(code: str) -> str:
    region = next(r for r in sample._REGIONS if r.code == code)
    return region.full


# -- the catalog's own schemas, whatever they are today ---------------------------------


@pytest.mark.parametrize("path", AVSC_FILES, ids=[p.stem for p in AVSC_FILES])
def test_catalog_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    records = sample.generate(schema, 100, seed=2017)
    assert_valid(schema, records)
    assert_round_trips(schema, records)
    assert records == sample.generate(schema, 100, seed=2017)
    for r in records:
        for key, value in r.items():
            if value is None:
                continue
            if key.endswith("id_number"):
                assert sample.is_valid_id_number(value), (key, value)
            if key.endswith("credit_code"):
                assert sample.is_valid_credit_code(value), (key, value)
            if key == "region_code":
                assert value in REAL_REGION_CODES

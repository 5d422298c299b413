"""The dates of one person agree in every sample record (issue 12, item 4).

Rules, checked on every record of every resource in ``schemas/``, of a
generated benchmark catalog and of schemas that hypothesis composes from
person fields (ID numbers, birth dates, ages, grades, enrolment, issue and
registration dates) under any record name:

1. The birth date in an 18-digit ID number is the ``birth_date`` of the same
   person (``mother_id_number`` and ``mother_birth_date``).
2. Nobody is born after :data:`sample.AS_OF`, the day the sample data describes,
   or more than 120 years before it; and that day is not in the future.
3. An ``age`` is the person's age on a day of the records' reference period
   (:data:`sample.REFERENCE_FIRST` to :data:`sample.AS_OF`).
4. Nothing that has happened (issue, registration, approval, update, enrolment
   ...) is dated after :data:`sample.AS_OF`, nor (but enrolment, a date of the
   subject's past) before the birth of anyone in the record; an expiry or term
   end is not before any other date of the record.
5. Enrolment: the young (under 22 on :data:`sample.AS_OF`) enrolled (at school)
   aged 3 to 7, and a ``grade`` is the school year they are in during the
   reference period; adults first enrolled (in insurance, say) at 16 or older.

The checker reads field names with its own plain rules, not the generator's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.avro.jsoncodec import CHINA_TZ
from exchange.dev import bench_catalog, sample

AVSC_FILES = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))
DATE = {"type": "int", "logicalType": "date"}
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
EXPIRY = re.compile(r"(^|_)(end|expiry|expires|until|due|valid_to)(_|$)")


def age_at(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def school_year(day: dt.date) -> int:
    """The year a school year began in: September to August."""
    return day.year if day.month >= 9 else day.year - 1


def as_date(name: str, value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(CHINA_TZ).date()
    if isinstance(value, dt.date):
        return value
    if not re.search(r"(^|_)(date|day|birth)$", name):
        return None
    if isinstance(value, int) and 10000101 <= value <= 99991231:
        return dt.date(value // 10000, value // 100 % 100, value % 100)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        return dt.date.fromisoformat(value)
    return None


def person_of(name: str, doc: str) -> tuple[str, str] | None:
    """``(what, person prefix)`` for an ID number, birth date or age field, else None."""
    for what, suffix in (("id", "id_number"), ("birth", "birth_date"), ("age", "age")):
        if name == suffix or name.endswith("_" + suffix):
            return what, name.removesuffix(suffix)
    if "公民身份号码" in doc and not re.search(r"[a-z]{3}", name):
        return "id", ""
    if "出生日期" in doc and not re.search(r"[a-z]{3}", name):
        return "birth", ""
    return None


def check_record(schema: dict[str, Any], record: dict[str, Any], where: str) -> None:
    ids: dict[str, str] = {}
    births: dict[str, dt.date] = {}
    ages: dict[str, int] = {}
    events: dict[str, dt.date] = {}
    expiries: dict[str, dt.date] = {}
    fields = {f["name"]: f for f in schema["fields"]}
    for name, value in record.items():
        if value is None:
            continue
        if isinstance(value, dict) and "fields" in _branch(fields[name]["type"]):
            check_record(_branch(fields[name]["type"]), value, f"{where}.{name}")
            continue
        role = person_of(name, str(fields[name].get("doc", "")))
        day = as_date(name, value)
        if role is not None and role[0] == "id":
            ids[role[1]] = value
            births.setdefault(
                role[1], dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
            )
        elif role is not None and role[0] == "birth" and day is not None:
            births[role[1]] = day
        elif role is not None and role[0] == "age" and isinstance(value, int):
            ages[role[1]] = value
        elif day is not None:
            (expiries if EXPIRY.search(name) else events)[name] = day
    show = f"{where}: {record}"
    for person, idn in ids.items():  # rule 1
        assert idn[6:14] == births[person].strftime("%Y%m%d"), (person, show)
    for birth in births.values():  # rule 2
        assert sample.AS_OF.replace(year=sample.AS_OF.year - 120) <= birth <= sample.AS_OF, show
    for person, age in ages.items():  # rule 3
        if person in births:
            lo, hi = (age_at(births[person], d) for d in (sample.REFERENCE_FIRST, sample.AS_OF))
            assert lo <= age <= hi, (person, age, show)
    last_birth = max(births.values(), default=dt.date.min)
    for name, day in events.items():  # rule 4 (enrolment: rule 5)
        assert "enrol" in name or last_birth <= day, (name, day, show)
        assert day <= sample.AS_OF, (name, day, show)
    for name, day in expiries.items():
        assert day >= max(events.values(), default=dt.date.min), (name, show)
    grade = record.get("grade")
    for name, day in events.items():  # rule 5
        if "enrol" not in name or "" not in births:
            continue
        entered = age_at(births[""], day)
        if age_at(births[""], sample.AS_OF) >= 22:
            assert entered >= 16, (name, entered, show)
            continue
        assert 3 <= entered <= 7, (name, entered, show)
        if isinstance(grade, int):
            in_school = day.year + grade - 1
            first, last = school_year(sample.REFERENCE_FIRST), school_year(sample.AS_OF)
            assert first <= in_school <= last, (name, grade, show)


def _branch(t: Any) -> Any:
    if isinstance(t, list):
        return next(b for b in t if b != "null")
    return t


def check(schema: dict[str, Any], seed: int, count: int = 30) -> None:
    for i, record in enumerate(sample.generate(schema, count, seed=seed)):
        check_record(schema, record, f"{schema['name']} #{i} (seed {seed})")


def test_the_sample_day_is_not_in_the_future() -> None:
    assert sample.REFERENCE_FIRST < sample.AS_OF <= dt.date.today()


# -- every resource of the catalog ------------------------------------------------------------


@pytest.mark.parametrize("path", AVSC_FILES, ids=[p.stem for p in AVSC_FILES])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15, deadline=None)
def test_catalog_resources(path: Path, seed: int) -> None:
    check(json.loads(path.read_text(encoding="utf-8")), seed)


def _bench_schemas() -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        bench_catalog.write_catalog(Path(tmp), departments=3, resources=3)
        for p in sorted((Path(tmp) / "avro").glob("*.avsc")):
            yield json.loads(p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("schema", list(_bench_schemas()), ids=lambda s: str(s["name"]))
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10, deadline=None)
def test_generated_catalog_resources(schema: dict[str, Any], seed: int) -> None:
    check(schema, seed)


# -- records hypothesis composes --------------------------------------------------------------

RECORD_NAMES = (
    "StudentEnrolment",
    "PupilRoster",
    "SchoolRegister",
    "XueJi",
    "BirthRegistration",
    "DeathRegistration",
    "MarriageRecord",
    "SocialInsurance",
    "ResidentCard",
    "ChildAllowance",
    "Zq7",
)
PERSONS = ("", "mother_", "father_", "child_", "holder_", "applicant_", "spouse_")


def _date_type(name: str) -> st.SearchStrategy[Any]:
    return st.sampled_from([DATE, DATE, "string", "int"] if name.endswith("date") else [DATE])


@st.composite
def person_schemas(draw: st.DrawFn) -> dict[str, Any]:
    fields: list[dict[str, Any]] = []
    for prefix in draw(st.lists(st.sampled_from(PERSONS), min_size=1, max_size=3, unique=True)):
        for suffix in draw(
            st.lists(
                st.sampled_from(["id_number", "birth_date", "age", "name"]), min_size=1, unique=True
            )
        ):
            name = prefix + suffix
            kind = draw(_date_type(name)) if suffix == "birth_date" else "string"
            fields.append({"name": name, "type": "int" if suffix == "age" else kind})
    others = {
        "grade": "int",
        "enrolment_date": DATE,
        "enrollment_date": "string",
        "first_enrolled_date": DATE,
        "admission_date": DATE,
        "issue_date": DATE,
        "issued_at": TIMESTAMP,
        "registration_date": "int",
        "approval_date": DATE,
        "death_date": DATE,
        "established_date": DATE,
        "valid_until": DATE,
        "term_end_date": DATE,
        "updated_at": TIMESTAMP,
        "check_date": DATE,
        "school_name": "string",
    }
    for name in draw(st.lists(st.sampled_from(sorted(others)), max_size=6, unique=True)):
        fields.append({"name": name, "type": others[name]})
    if draw(st.booleans()):
        fields.append({"name": "zd1", "type": "string", "doc": "公民身份号码"})
        fields.append({"name": "zd2", "type": DATE, "doc": "出生日期"})
    order = draw(st.permutations(range(len(fields))))
    shuffled = [fields[i] for i in order]
    names = {f["name"] for f in shuffled}
    if "zd1" in names and ({"id_number", "birth_date"} & names):
        shuffled = [f for f in shuffled if f["name"] not in ("zd1", "zd2")]
    for f in shuffled:
        if draw(st.booleans()) and f["name"] not in ("grade",):
            f["type"] = ["null", f["type"]]
    return {
        "type": "record",
        "name": draw(st.sampled_from(RECORD_NAMES)),
        "namespace": draw(st.sampled_from(["gov.exchange.education", "gov.exchange.x", "a.b"])),
        "fields": shuffled,
    }


@given(schema=person_schemas(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_composed_records(schema: dict[str, Any], seed: int) -> None:
    check(schema, seed, count=10)


def test_the_pupil_of_the_issue() -> None:
    """ID number, grade and enrolment date: born, then enrolled at six, in the grade that makes."""
    schema = {
        "type": "record",
        "name": "StudentStatus",
        "fields": [
            {"name": "id_number", "type": "string"},
            {"name": "grade", "type": "int"},
            {"name": "enrolment_date", "type": DATE},
            {"name": "age", "type": "int"},
        ],
    }
    check(schema, seed=0, count=200)
    grades = {r["grade"] for r in sample.generate(schema, 200, seed=0)}
    assert grades == set(range(1, 10))

"""Realistic, reproducible sample records for any resource, from its Avro schema alone.

Nothing here knows a particular catalog: values are chosen from the field's
Avro type and logical type, its name (``mother_id_number``, ``company_name``,
``birth_weight_grams`` ...), the record's name and namespace, and, for field
names that say nothing (pinyin abbreviations such as ``xm``), the Chinese
words of the field's ``doc``. A resource added tomorrow gets sensible data
without a code change; a field nothing recognises still gets a valid value.

Records come back in fastavro's Python form (``datetime.date``, aware
``datetime`` in :data:`~exchange.avro.jsoncodec.CHINA_TZ`, ``Decimal`` at the
schema's scale, ``bytes``) and survive :func:`exchange.avro.jsoncodec.dumps`
followed by :func:`exchange.avro.jsoncodec.from_json` unchanged.

Reproducibility: every value is drawn from its own random stream, derived from
``(seed, schema full name, field path, record index)``. The same seed gives the
same records, and
adding a field to a schema leaves the values of the other fields unchanged
(except when the new field joins a person, see below).

Consistency inside one record:

* Fields about the same person are grouped by their prefix: ``mother_name``,
  ``mother_id_number`` and ``mother_birth_date`` share one birth date and one
  gender; unprefixed fields (``name``, ``id_number``, ``gender``,
  ``birth_date``) and ``child_``/``newborn_``/``holder_`` ones describe the
  record's subject. The resident ID number carries that birth date, a sequence
  number whose parity gives the gender (odd = male) and a valid check digit.
  ``husband``/``father`` are men, ``wife``/``mother`` women.
* One administrative region per record feeds ``region_code``, ``address``,
  org names and (mostly) ID numbers.
* One reference date per record places event dates (registration, approval,
  death), timestamps (issued before updated) and newborns' birth dates.
* One life per person: everyone is born on or before the reference date, and
  nothing of the record (issue, registration, approval) happens before the
  birth of anyone in it. An ``age`` is the age on the reference date; parents
  are 20 to 40 years older than their child (and born 1920 or later). The
  subject of a record about school (``student``, ``pupil``, ``school`` or a
  ``grade`` field; or a child with an enrolment date) is a pupil in grade 1-9:
  it started school on 1 September of the year it was six by 31 August (its
  ``enrolment_date``), and its ``grade`` counts the school years since. Adults
  first enrol (in insurance, say) at 18 or later.
* Nothing that has happened is dated after :data:`AS_OF`; expiry dates and term
  ends fall after it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
import string
import struct
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from itertools import accumulate
from random import Random
from typing import Any

from exchange.avro import jsoncodec
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.avro.schema import parse
from exchange.dev.fieldnames import (
    ADULT,
    ATTACHMENT,
    CHILD,
    ELDER,
    ENROL,
    EVENT,
    EXPIRY,
    FALSE_MOSTLY,
    FEMALE,
    GOV,
    HOSPITAL,
    MALE,
    MONEY,
    NEWBORN,
    ORG,
    ORG_FIELD_ENDINGS,
    PARENT,
    PHOTO,
    SCHOOL,
    SCHOOLING,
    START,
    STATUS,
    TIME_TOKENS,
    TRUE_MOSTLY,
    USER,
    effective_snake,
    name_tokens,
    person_role,
    plural_forms,
    snake_name,
)
from exchange.dev.idcodes import (
    CREDIT_CHARS,
    credit_code_check,
    id_check_digit,
    is_valid_credit_code,
    is_valid_id_number,
    luhn_digit,
    org_code_check,
)
from exchange.dev.lifedates import (
    add_years,
    age_at,
    grade_at,
    grade_name,
    pupil_birth,
    school_entry,
)

__all__ = [
    "AS_OF",
    "REFERENCE_FIRST",
    "credit_code_check",
    "generate",
    "id_check_digit",
    "is_valid_credit_code",
    "is_valid_id_number",
    "iter_json_lines",
]

Schema = dict[str, Any]

#: The records describe the days from REFERENCE_FIRST to AS_OF: each record's reference day
#: (its events, the ages and school grades in it) falls in that period, and nothing that
#: has happened is dated after AS_OF (an expiry or term end may be).
REFERENCE_FIRST = dt.date(2024, 1, 1)
AS_OF = dt.date(2026, 6, 30)

_NULL_RATE = 0.1  # share of nullable values left null ...
_ALWAYS_PRESENT = 3  # ... except in the first records, which are complete
_MAX_DEPTH = 6  # recursive schemas: below this, optional parts stay empty

# ---------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    code: str
    province: str
    city: str  # same as province for the four municipalities
    district: str

    @property
    def full(self) -> str:
        city = "" if self.city == self.province else self.city
        return f"{self.province}{city}{self.district}"

    @property
    def local(self) -> str:
        """How local org names begin: 杭州市西湖区, but 义乌市 for a county-level city."""
        return self.district if self.district.endswith("市") else f"{self.city}{self.district}"

    @property
    def city_short(self) -> str:
        return self.city.removesuffix("市")

    @property
    def district_short(self) -> str:
        d = self.district
        for suffix in ("新区", "区", "县", "市"):
            if d.endswith(suffix) and len(d) > len(suffix) + 1:
                return d.removesuffix(suffix)
        return d


# The tables are data files in ``sample_data/``, read once on import.
# ``values.json``: what values are made of. Real GB/T 2260 county-level region
# codes (Zhejiang, the bus's home province, weighted up); mobile number segments
# in ordinary use (no 14x data-only, no 170/171 virtual-operator ones); surnames
# with their weights; given names, streets, hospitals, banks; the agencies, each
# with the words of a field or record that point to it; causes of death with
# their ICD-10 codes; the words of remarks, titles and map keys.
# ``field_words.json`` is read by :mod:`exchange.dev.fieldnames`.


def _load(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath("sample_data", name).read_text("utf-8"))


_VALUES = _load("values.json")


def _strings(key: str) -> tuple[str, ...]:
    return tuple(_VALUES[key])


_REGIONS = tuple(_Region(code, *names.split()) for code, names in _VALUES["regions"])
_REGION_WEIGHTS = tuple(accumulate(4 if r.code.startswith("33") else 1 for r in _REGIONS))
_PLATE_PREFIX: dict[str, str] = _VALUES["plate_prefix"]
_SURNAME_LIST = tuple(str(s) for s, _ in _VALUES["surnames"])
_SURNAME_CUM = tuple(accumulate(int(w) for _, w in _VALUES["surnames"]))
_GIVEN_MALE = str(_VALUES["given_male"])
_GIVEN_FEMALE = str(_VALUES["given_female"])
# (hint tokens, agency): the agency a record's field most likely names.
_AGENCIES = tuple((frozenset[str](words), str(agency)) for words, agency in _VALUES["agencies"])
_DISEASES = tuple((str(name), str(icd)) for name, icd in _VALUES["diseases"])

_STREETS = _strings("streets")
_MOBILE_PREFIXES = _strings("mobile_prefixes")
_POSTCODES = _strings("postcodes")
_PINYIN_FAMILY = _strings("pinyin_family")
_PINYIN_GIVEN = _strings("pinyin_given")
_EMAIL_DOMAINS = _strings("email_domains")
_BRANDS = _strings("brands")
_INDUSTRIES = _strings("industries")
_COMPANY_SUFFIXES = _strings("company_suffixes")
_ENTERPRISE_TYPES = _strings("enterprise_types")
_SCOPE_ITEMS = _strings("scope_items")
_HOSPITALS_ZJ = _strings("hospitals_zj")
_HOSPITAL_KINDS = _strings("hospital_kinds")
_BANKS = _strings("banks")
_AGENCY_DEFAULT = _strings("agency_default")
_ETHNIC_MINORITIES = _strings("ethnic_minorities")
_OCCUPATIONS = _strings("occupations")
_EDUCATION = _strings("education")
_MARITAL = _strings("marital")
_RELATIONS = _strings("relations")
_STATUS_WORDS = _strings("status_words")
_REMARKS = _strings("remarks")
_TITLE_TOPICS = _strings("title_topics")
_TITLE_KINDS = _strings("title_kinds")
_WORDS = _strings("words")
_MAP_KEYS = _strings("map_keys")

_EXAMPLE_RE = re.compile(r"(?:如|例如|e\.g\.,?)\s*([A-Za-z0-9][A-Za-z0-9\-/]{3,})")

# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    birth: dt.date
    male: bool
    pupil: bool = False  # at school on the record's reference date (see _make_person)


@dataclass(frozen=True)
class _FieldPlan:
    name: str
    snake: str
    tokens: frozenset[str]
    person_key: str | None
    example: str | None


@dataclass(frozen=True)
class _RecordPlan:
    fields: tuple[_FieldPlan, ...]
    hints: frozenset[str]  # record name, namespace and enclosing field
    person_hints: Mapping[str, frozenset[str]]  # words naming each person of the record
    schooling: bool  # the record is about school: its subject is a pupil (if a child)


@dataclass(frozen=True)
class _Slot:
    """What a value generator knows about the place it fills."""

    snake: str
    tokens: frozenset[str]
    hints: frozenset[str]
    example: str | None
    person: _Person | None
    subject: _Person | None  # the person the record is about
    earliest: dt.date  # the latest birth in the record: nothing of it happens before
    region: _Region
    anchor: dt.date  # the record's reference date
    record_path: str
    index: int
    stream: str  # seed and schema name, the root of every random stream


def _rand_date(rng: Random, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randrange((hi - lo).days + 1))


def _digits(rng: Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _float32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


class _Generator:
    def __init__(self, schema: Schema, seed: int) -> None:
        parse(schema)
        self._schema = schema
        name = str(schema["name"])
        namespace = schema.get("namespace")
        full_name = f"{namespace}.{name}" if namespace and "." not in name else name
        # Streams depend on the schema's full name too: two resources generated
        # with the same seed do not share certificate numbers or addresses.
        self._stream = f"{seed}\x1f{full_name}"
        self._named: dict[str, Any] = {}
        self._collect(schema, None)
        self._stream_keys: dict[str, int] = {}
        self._plans: dict[tuple[int, frozenset[str]], _RecordPlan] = {}

    # -- plumbing -----------------------------------------------------------

    def _collect(self, t: Any, namespace: str | None) -> None:
        if isinstance(t, list):
            for branch in t:
                self._collect(branch, namespace)
        elif isinstance(t, dict):
            kind = t.get("type")
            if kind in ("record", "error", "enum", "fixed") and "name" in t:
                name = str(t["name"])
                ns = t.get("namespace", namespace)
                if "." in name:
                    ns = name.rsplit(".", 1)[0]
                self._named.setdefault(name.rsplit(".", 1)[-1], t)
                if ns:
                    self._named[f"{ns}.{name.rsplit('.', 1)[-1]}"] = t
                namespace = ns
            for f in t.get("fields", ()):
                self._collect(f["type"], namespace)
            for key in ("items", "values"):
                if key in t:
                    self._collect(t[key], namespace)
            if isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def _resolve(self, t: Any) -> Any:
        while isinstance(t, str) and t not in _PRIMITIVES:
            t = self._named.get(t) or self._named[t.rsplit(".", 1)[-1]]
        return t

    def _rng(self, index: int, path: str) -> Random:
        """The random stream of one value: a function of (seed, schema, path, index) only."""
        key = self._stream_keys.get(path)
        if key is None:
            digest = hashlib.blake2b(f"{self._stream}\x1f{path}".encode(), digest_size=8).digest()
            key = self._stream_keys[path] = int.from_bytes(digest, "big")
        return Random((key << 64) | index)  # noqa: S311 - sample data, not secrets

    # -- records --------------------------------------------------------------

    def record(self, index: int) -> dict[str, Any]:
        region = self._rng(index, "#region").choices(_REGIONS, cum_weights=_REGION_WEIGHTS)[0]
        anchor = _rand_date(self._rng(index, "#anchor"), dt.date(2024, 1, 1), dt.date(2025, 12, 31))
        return self._record(self._schema, "", index, 0, frozenset(), region, anchor)

    def _plan(self, t: Schema, outer: frozenset[str]) -> _RecordPlan:
        cache_key = (id(t), outer)
        plan = self._plans.get(cache_key)
        if plan is not None:
            return plan
        hints = set(outer) | name_tokens(snake_name(str(t.get("name", "")).rsplit(".", 1)[-1]))
        namespace = str(t.get("namespace", ""))
        if namespace:
            hints |= name_tokens(snake_name(namespace.rsplit(".", 1)[-1]))
        fields = []
        groups: dict[str, set[str]] = {}
        for f in t["fields"]:
            snake = effective_snake(f["name"], f.get("doc"))
            role = person_role(snake)
            key = None
            if role is not None:
                key = role[1]
                groups.setdefault(key, set()).update(name_tokens(role[2]))
            doc = f.get("doc")
            m = _EXAMPLE_RE.search(doc) if isinstance(doc, str) else None
            example = m.group(1) if m and any(c.isdigit() for c in m.group(1)) else None
            fields.append(_FieldPlan(f["name"], snake, name_tokens(snake), key, example))
        words = hints.union(*(f.tokens for f in fields))
        young = (hints | groups.get("", set())) & (CHILD | NEWBORN)
        schooling = bool(words & SCHOOLING) or any(f.snake == "grade" for f in fields)
        plan = _RecordPlan(
            tuple(fields),
            frozenset(hints),
            {k: frozenset(v) for k, v in groups.items()},
            schooling or bool(words & ENROL and young),
        )
        self._plans[cache_key] = plan
        return plan

    def _record(
        self,
        t: Schema,
        path: str,
        index: int,
        depth: int,
        outer: frozenset[str],
        region: _Region,
        anchor: dt.date,
    ) -> dict[str, Any]:
        """One record; nested records share the region and reference date of the top one."""
        plan = self._plan(t, outer)
        persons: dict[str, _Person] = {}
        for key in sorted(plan.person_hints, key=bool):  # the subject first: parents follow it
            persons[key] = _make_person(
                self._rng(index, f"{path}#person:{key}"),
                plan.person_hints[key],
                plan.hints,
                anchor,
                subject=not key,
                pupil=plan.schooling and not key,
                child=persons.get(""),
            )
        subject = persons.get("")
        earliest = max((p.birth for p in persons.values()), default=dt.date.min)
        out: dict[str, Any] = {}
        for fp, f in zip(plan.fields, t["fields"], strict=True):
            fpath = f"{path}.{fp.name}" if path else fp.name
            person = None
            hints = plan.hints
            if fp.person_key is not None:
                person = persons[fp.person_key]
                hints = hints | plan.person_hints[fp.person_key]
            slot = _Slot(
                fp.snake,
                fp.tokens,
                hints,
                fp.example,
                person,
                subject,
                earliest,
                region,
                anchor,
                path,
                index,
                self._stream,
            )
            out[fp.name] = self._value(f["type"], slot, fpath, depth + 1)
        return out

    # -- dispatch on the Avro type ------------------------------------------------

    def _value(self, t: Any, slot: _Slot, path: str, depth: int) -> Any:
        t = self._resolve(t)
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            if "null" in t and (
                not branches
                or depth > _MAX_DEPTH
                or (
                    slot.index >= _ALWAYS_PRESENT
                    and self._rng(slot.index, f"{path}#null").random() < _NULL_RATE
                )
            ):
                return None
            # The first non-null branch: jsoncodec.from_json tries branches in
            # order, so a value of the first one always reads back as itself.
            # Deep in a recursive schema, a branch that is not a record ends it.
            branch = branches[0]
            if depth > _MAX_DEPTH:
                flat = [b for b in branches if not _is_record(self._resolve(b))]
                branch = flat[0] if flat else branch
            return self._value(branch, slot, path, depth)
        if isinstance(t, dict):
            return self._complex(t, slot, path, depth)
        rng = self._rng(slot.index, path)
        if t == "null":
            return None
        if t == "boolean":
            return _boolean(slot, rng)
        if t in ("int", "long"):
            return _integer(slot, rng, t)
        if t in ("float", "double"):
            return _floating(slot, rng, t)
        if t == "bytes":
            return _bytes(slot, rng)
        if t == "string":
            return _string(slot, rng)
        raise ValueError(f"{path}: unsupported Avro type {t!r}")

    def _complex(self, t: Schema, slot: _Slot, path: str, depth: int) -> Any:
        base = t.get("type")
        lt = t.get("logicalType")
        rng = self._rng(slot.index, path)
        if lt == "date" and base == "int":
            return _date(slot, rng)
        if lt in ("timestamp-millis", "timestamp-micros") and base == "long":
            return _timestamp(slot, rng)
        if lt == "decimal" and base in ("bytes", "fixed"):
            return _decimal(slot, rng, t)
        if lt == "uuid" and base == "string":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if lt == "time-millis" and base == "int":
            return _time_of_day_ms(rng)
        if lt == "time-micros" and base == "long":
            return _time_of_day_ms(rng) * 1000
        if lt in ("local-timestamp-millis", "local-timestamp-micros") and base == "long":
            naive = _timestamp(slot, rng).replace(tzinfo=dt.UTC)
            ms = int(naive.timestamp() * 1000)
            return ms if lt.endswith("millis") else ms * 1000
        if base in ("record", "error"):
            if depth > _MAX_DEPTH * 2:
                raise ValueError(f"{path}: schema recursion too deep to generate a value")
            return self._record(t, path, slot.index, depth, slot.tokens, slot.region, slot.anchor)
        if base == "enum":
            return _enum(slot, rng, t["symbols"])
        if base == "fixed":
            return rng.randbytes(int(t["size"]))
        if base == "array":
            if depth > _MAX_DEPTH:
                return []
            n = rng.randint(1, 3)
            item_slot = replace(slot, person=None)
            return [self._value(t["items"], item_slot, f"{path}[{i}]", depth + 1) for i in range(n)]
        if base == "map":
            if depth > _MAX_DEPTH:
                return {}
            keys = rng.sample(_MAP_KEYS, rng.randint(1, 3))
            item_slot = replace(slot, person=None)
            return {
                k: self._value(t["values"], item_slot, f"{path}{{{k}}}", depth + 1) for k in keys
            }
        return self._value(base, slot, path, depth)


_PRIMITIVES = frozenset(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])


def _is_record(t: Any) -> bool:
    return isinstance(t, dict) and t.get("type") in ("record", "error")


# ---------------------------------------------------------------------------
# Values by type
# ---------------------------------------------------------------------------


def _make_person(
    rng: Random,
    own: frozenset[str],
    context: frozenset[str],
    anchor: dt.date,
    *,
    subject: bool,
    pupil: bool = False,
    child: _Person | None = None,
) -> _Person:
    """A person named by ``own`` words (``mother``), in a record described by ``context``.

    The context (record name, namespace, enclosing field) speaks only for the
    record's subject. Parents are 20 to 40 years older than ``child``, the
    record's subject (or than a newborn or child the context speaks of).
    Everyone is born on or before ``anchor``, the record's reference date.
    """
    hints = own | context if subject else own
    if hints & FEMALE and not hints & MALE:
        male = False
    elif hints & MALE and not hints & FEMALE:
        male = True
    else:
        male = rng.random() < 0.5
    parent_of = None  # the birth of the parent's child
    if not subject and own & PARENT:
        parent_of = child.birth if child is not None else None
        if parent_of is None and context & (NEWBORN | CHILD):
            parent_of = anchor
    # a record about school is about a pupil, unless its subject is said to be grown up
    pupil = pupil and bool(hints & (CHILD | NEWBORN) or not hints & (ELDER | ADULT))
    if pupil:
        birth = pupil_birth(rng, anchor)
    elif hints & NEWBORN:
        birth = anchor - dt.timedelta(days=1 + rng.randrange(60))
    elif hints & CHILD:
        birth = _rand_date(rng, add_years(anchor, -18) + dt.timedelta(days=1), anchor)
    elif parent_of is not None:
        oldest = max(add_years(parent_of, -40), dt.date(1920, 1, 1))
        birth = _rand_date(rng, oldest, add_years(parent_of, -20))
    elif hints & ELDER:
        birth = _rand_date(rng, dt.date(1940, 1, 1), dt.date(1975, 12, 31))
    elif hints & ADULT:
        birth = _rand_date(rng, dt.date(1955, 1, 1), add_years(anchor, -22))
    else:
        birth = _rand_date(rng, dt.date(1940, 1, 1), add_years(anchor, -22))
    return _Person(birth, male, pupil)


def _subject(slot: _Slot, rng: Random) -> _Person:
    if slot.person is not None:
        return slot.person
    return _make_person(rng, frozenset(), slot.hints, slot.anchor, subject=True)


def _time_of_day_ms(rng: Random) -> int:
    if rng.random() < 0.85:  # office hours, mostly
        return rng.randrange(8 * 3_600_000 + 1_800_000, 17 * 3_600_000 + 1_800_000)
    return rng.randrange(86_400_000)


def _date(slot: _Slot, rng: Random) -> dt.date:
    role = person_role(slot.snake)
    if role is not None and role[0] == "birth":
        return _subject(slot, rng).birth
    tok = slot.tokens
    anchor, earliest, subject = slot.anchor, slot.earliest, slot.subject
    if tok & EXPIRY or ("end" in tok and tok & {"term", "valid", "validity"}):
        return _rand_date(rng, AS_OF + dt.timedelta(days=1), add_years(anchor, 20))
    if tok & ENROL and subject is not None:
        if subject.pupil:
            return school_entry(subject.birth)
        lo = max(add_years(subject.birth, 18), dt.date(1995, 1, 1))
        if lo <= anchor - dt.timedelta(days=60):
            return _rand_date(rng, lo, anchor - dt.timedelta(days=60))
    if tok & EVENT:
        return anchor - dt.timedelta(days=rng.randrange(min(31, (anchor - earliest).days + 1)))
    lo = max(dt.date(2015, 1, 1), earliest)
    if tok & START:
        return _rand_date(rng, lo, max(lo, anchor - dt.timedelta(days=60)))
    return _rand_date(rng, lo, anchor)


def _timestamp(slot: _Slot, rng: Random) -> dt.datetime:
    role = person_role(slot.snake)
    if role is not None and role[0] == "birth":
        day = _subject(slot, rng).birth
        ms = rng.randrange(86_400_000)
    else:
        if slot.tokens & {"updated", "modified", "changed", "synced", "sync", "last"}:
            offset = rng.randint(60, 360)
        else:
            offset = rng.randrange(31)
        day = min(slot.anchor + dt.timedelta(days=offset), AS_OF)
        ms = _time_of_day_ms(rng)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)
    return midnight + dt.timedelta(milliseconds=ms)


def _boolean(slot: _Slot, rng: Random) -> bool:
    if slot.tokens & FALSE_MOSTLY:
        return rng.random() < 0.1
    if slot.tokens & TRUE_MOSTLY:
        return rng.random() < 0.85
    return rng.random() < 0.5


def _enum(slot: _Slot, rng: Random, symbols: list[str]) -> str:
    role = person_role(slot.snake)
    if role is not None and role[0] == "gender":
        male = _subject(slot, rng).male
        wanted = ("male", "m", "man", "boy", "nan") if male else ("female", "f", "woman", "girl")
        for s in symbols:
            if s.lower() in wanted:
                return s
    if slot.tokens & STATUS and rng.random() < 0.7:
        return symbols[0]  # the first status is usually the ordinary one
    return str(rng.choice(symbols))


def _numeric_range(slot: _Slot, kind: str) -> tuple[float, float, int]:
    """``(low, high, decimal places)`` of a plausible number for the field."""
    tok = slot.tokens
    hints = tok | slot.hints
    if tok & {"latitude", "lat"}:
        return 18.0, 53.0, 6
    if tok & {"longitude", "lon", "lng"}:
        return 73.0, 135.0, 6
    if "age" in tok:
        if hints & (CHILD | NEWBORN):
            return 0, 17, 0
        return (18, 80, 0) if hints & ADULT else (0, 100, 0)
    if "weight" in tok:
        if "kg" in tok:
            return (2.5, 4.2, 2) if hints & NEWBORN else (40, 100, 1)
        return (45000, 90000, 0) if hints & ADULT and not hints & NEWBORN else (2500, 4200, 0)
    if tok & {"height", "length", "stature"}:
        return (45, 56, 1) if hints & NEWBORN else (150, 190, 1)
    if tok & {"gestation", "gestational", "pregnancy"}:
        return 37, 42, 0
    if tok & {"temperature", "temp"}:
        return 36.0, 37.5, 1
    if tok & {"months", "weeks", "days", "years"} and not tok & {"monthly", "weekly", "daily"}:
        top = {"months": 360, "weeks": 520, "days": 3650, "years": 40}
        return 1, max(top[t] for t in tok & set(top)), 0
    poor = hints & {"allowance", "assistance", "relief", "poverty", "subsistence"}
    if tok & {"capital", "assets", "asset"}:
        if "capital" in tok:
            return 100_000, 50_000_000, 2
        return (0, 30_000, 2) if poor else (0, 500_000, 2)
    if tok & {"allowance", "subsidy", "benefit", "pension", "relief"}:
        return 300, 4000, 2
    if tok & {"income", "salary", "wage", "base"}:
        if poor:
            return 0, 1000, 2  # households on minimum living allowance
        return 2000, 30000, 2
    if tok & {"contribution", "premium", "fee"}:
        return 50, 3000, 2
    if tok & MONEY:
        return 10, 50000, 2
    if tok & {"ratio", "proportion"}:
        return 0, 1, 4
    if tok & {"percent", "percentage", "pct", "rate", "score"}:
        return 0, 100, 2
    if "area" in tok:
        return 20, 300, 2
    if "year" in tok:
        return 2015, slot.anchor.year, 0
    if "month" in tok:
        return (1, 360, 0) if "months" in tok else (1, 12, 0)
    if "week" in tok:
        return 1, 52, 0
    if "day" in tok:
        return (1, 365, 0) if "days" in tok else (1, 28, 0)
    if "hour" in tok:
        return 0, 23, 0
    if tok & {"minute", "second"}:
        return 0, 59, 0
    if tok & {"household", "family"} and tok & {"size", "member", "population", "count"}:
        return 1, 6, 0
    if "population" in tok:
        return 1000, 5_000_000, 0
    if tok & {"level", "grade", "rank", "priority", "star"}:
        return 1, 5, 0
    if tok & {"count", "quantity", "qty", "times", "total", "num", "number", "size"}:
        return 0, 200, 0
    if tok & {"seq", "sequence", "version", "order", "index", "no", "serial"}:
        return 1, 9999, 0
    if kind == "long":
        return 0, 1_000_000_000, 0
    if kind == "int":
        return 0, 10000, 0
    return 0, 1000, 2


_INT_LIMITS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _integer(slot: _Slot, rng: Random, kind: str) -> int:
    tok = slot.tokens
    role = person_role(slot.snake)
    if role is not None and role[0] == "gender":
        return 1 if _subject(slot, rng).male else 2  # GB/T 2261.1
    if role is not None and role[0] == "age":
        return age_at(_subject(slot, rng).birth, slot.anchor)
    if role is not None and role[0] == "birth" and "year" in tok:
        return _subject(slot, rng).birth.year
    if (role is not None and role[0] == "birth") or "date" in tok:
        d = _date(slot, rng)
        return d.year * 10000 + d.month * 100 + d.day
    if "grade" in tok and slot.subject is not None and slot.subject.pupil:
        return grade_at(slot.subject.birth, slot.anchor)
    not_instants = {"times", "month", "day", "hour", "minute", "second", "duration", "elapsed"}
    if tok & TIME_TOKENS and not tok & not_instants:
        seconds = int(_timestamp(slot, rng).timestamp())
        return seconds * 1000 if kind == "long" else seconds
    if kind == "long" and tok & {"phone", "mobile", "tel", "telephone", "cellphone"}:
        return int(_mobile(rng))
    if slot.snake == "id" or slot.snake.endswith("_id"):
        return rng.randint(10**15, 10**16 - 1) if kind == "long" else rng.randint(1, 9_999_999)
    lo, hi, _ = _numeric_range(slot, kind)
    low, high = _INT_LIMITS[kind]
    return max(low, min(high, rng.randint(int(lo), int(hi))))


def _floating(slot: _Slot, rng: Random, kind: str) -> float:
    role = person_role(slot.snake)
    if role is not None and role[0] == "age":
        return float(age_at(_subject(slot, rng).birth, slot.anchor))
    lo, hi, places = _numeric_range(slot, kind)
    value = round(rng.uniform(lo, hi), places if places else 1)
    return _float32(value) if kind == "float" else value


def _decimal(slot: _Slot, rng: Random, t: Schema) -> decimal.Decimal:
    precision = int(t["precision"])
    scale = int(t.get("scale", 0))
    lo, hi, _ = _numeric_range(slot, "decimal")
    unit = 10**scale
    max_units = 10**precision - 1
    if t.get("type") == "fixed":
        max_units = min(max_units, 2 ** (8 * int(t["size"]) - 1) - 1)
    hi_units = min(int(hi * unit), max_units)
    lo_units = min(int(lo * unit), hi_units // 2)
    units = rng.randint(lo_units, hi_units)
    if scale >= 2 and slot.tokens & MONEY and rng.random() < 0.5 and units >= unit:
        units -= units % unit  # whole yuan, as amounts often are
    return decimal.Decimal(units).scaleb(-scale)


def _bytes(slot: _Slot, rng: Random) -> bytes:
    tok = slot.tokens
    if tok & PHOTO:
        return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(rng.randint(16, 48))
    if tok & ATTACHMENT:
        return b"%PDF-1.7\n" + rng.randbytes(rng.randint(16, 48))
    if tok & {"hash", "digest", "checksum", "sha256"}:
        return rng.randbytes(32)
    if tok & {"signature", "sign"}:
        return rng.randbytes(64)
    return rng.randbytes(rng.randint(8, 32))


# -- strings ---------------------------------------------------------------------


def _person_name(rng: Random, male: bool | None, part: str = "name") -> str:
    surname = rng.choices(_SURNAME_LIST, cum_weights=_SURNAME_CUM)[0]
    if male is None:
        male = rng.random() < 0.5
    pool = _GIVEN_MALE if male else _GIVEN_FEMALE
    given = "".join(rng.choice(pool) for _ in range(1 if rng.random() < 0.35 else 2))
    if part == "surname":
        return surname
    if part == "given":
        return given
    return surname + given


def _id_number(rng: Random, person: _Person, region: _Region) -> str:
    code = region.code if rng.random() < 0.7 else rng.choice(_REGIONS).code
    last = rng.choice("13579" if person.male else "02468")
    body = f"{code}{person.birth:%Y%m%d}{rng.randrange(1, 100):02d}{last}"
    return body + id_check_digit(body)


def _credit_code(rng: Random, region: _Region) -> str:
    # 91 company, 92 individual business, 93 farmers' cooperative (GB 32100 table 1)
    kind = rng.choices(("91", "92", "93"), cum_weights=(90, 97, 100))[0]
    if rng.random() < 0.6:
        org = "MA" + "".join(
            rng.choice(CREDIT_CHARS[:10] + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(6)
        )
    else:
        org = _digits(rng, 8)
    body = f"{kind}{region.code}{org}{org_code_check(org)}"
    return body + credit_code_check(body)


def _mobile(rng: Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + _digits(rng, 8)


def _address(rng: Random, region: _Region) -> str:
    street = rng.choice(_STREETS)
    addr = f"{region.full}{street}{rng.randint(1, 999)}号"
    if rng.random() < 0.6:
        room = rng.randint(1, 30) * 100 + rng.randint(1, 4)
        addr += f"{rng.randint(1, 30)}幢{rng.randint(1, 4)}单元{room}室"
    return addr


def _org_name(rng: Random, tokens: frozenset[str], hints: frozenset[str], region: _Region) -> str:
    if tokens & HOSPITAL:
        if region.province == "浙江省" and rng.random() < 0.3:
            return rng.choice(_HOSPITALS_ZJ)
        if rng.random() < 0.5:
            return f"{region.local}人民医院"
        return f"{region.city}{rng.choice(_HOSPITAL_KINDS)}"
    if tokens & SCHOOL:
        kind = rng.choice(("第{}中学", "第{}小学", "实验小学", "外国语学校"))
        return f"{region.local}{kind.format('一二三四五六七八九'[rng.randrange(9)])}"
    if "bank" in tokens:
        return f"{rng.choice(_BANKS)}{region.city_short}{region.district_short}支行"
    if tokens & GOV:
        found = [agency for words, agency in _AGENCIES if (tokens | hints) & words]
        agency = found[0] if found else rng.choice(_AGENCY_DEFAULT)
        if agency == "公安分局":
            return f"{region.city}公安局{region.district_short}分局"
        if agency == "税务局":
            return f"国家税务总局{region.local}税务局"
        return f"{region.local}{agency}"
    suffix = rng.choice(_COMPANY_SUFFIXES)
    return f"{region.city_short}{rng.choice(_BRANDS)}{rng.choice(_INDUSTRIES)}{suffix}"


def _is_org_field(slot: _Slot) -> bool:
    tok = slot.tokens
    parts = slot.snake.split("_")
    if parts[-1] in ORG_FIELD_ENDINGS or plural_forms(parts[-1]) & ORG:
        if tok & ORG:
            return not tok & {"code", "id", "no", "number", "phone", "address", "type"}
        if parts[-1] == "by" and tok & GOV:
            return True
        if slot.snake == "name" and slot.hints & ORG:
            return True
    return False


def _from_example(rng: Random, example: str, slot: _Slot) -> str:
    """A value shaped like the doc's example: its region and year kept plausible."""

    def digits(m: re.Match[str]) -> str:
        run = m.group(0)
        if len(run) == 6 and any(r.code == run for r in _REGIONS):
            return slot.region.code
        if len(run) == 4 and run[:2] in ("19", "20"):
            return str(slot.anchor.year)
        return _digits(rng, len(run))

    return re.sub(r"\d+", digits, example)


def _serial_no(rng: Random, slot: _Slot) -> str:
    if slot.example:
        return _from_example(rng, slot.example, slot)
    generic = {"no", "number", "num", "code", "serial", "sn", "the", "of"}
    words = [p for p in slot.snake.split("_") if p and p not in generic]
    letter = (words[0][0] if words and words[0][0].isalpha() else "N").upper()
    return f"{letter}{slot.region.code[:2]}{_digits(rng, 7)}"


def _string(slot: _Slot, rng: Random) -> str:
    """A string for the field: the first group of rules that knows the field decides."""
    role = person_role(slot.snake)
    for rules in _STRING_RULES:
        value = rules(slot, rng, role)
        if value is not None:
            return value
    return _identifier_or_words(slot, rng)


_Role = tuple[str, str, str] | None


def _person_fact(slot: _Slot, rng: Random, role: _Role) -> str | None:
    """ID number, birth date or year, age, school grade, gender of the field's person."""
    tok = slot.tokens
    if role is not None and role[0] == "id":
        return _id_number(rng, _subject(slot, rng), slot.region)
    if role is not None and role[0] == "birth":
        birth = _subject(slot, rng).birth
        return str(birth.year) if "year" in tok else birth.isoformat()
    if role is not None and role[0] == "age":
        return str(age_at(_subject(slot, rng).birth, slot.anchor))
    if "grade" in tok and slot.subject is not None and slot.subject.pupil:
        return grade_name(grade_at(slot.subject.birth, slot.anchor))
    if role is not None and role[0] == "gender":
        male = _subject(slot, rng).male
        if tok & {"code"}:
            return "1" if male else "2"
        return "男" if male else "女"
    return None


_REGION_CODE_WORDS = frozenset(
    ["region", "division", "area", "district", "county", "xzqh", "adcode", "admin"]
)


def _code_or_contact(slot: _Slot, rng: Random, role: _Role) -> str | None:
    """Credit and org codes, phone, fax, e-mail, postcode, region codes."""
    tok = slot.tokens
    if tok & {"credit", "uscc", "tyshxydm"} and not tok & {"type", "status"}:
        return _credit_code(rng, slot.region)
    if tok & {"org", "organization", "organisation"} and "code" in tok:
        body = _digits(rng, 8)
        return f"{body}-{org_code_check(body)}"
    if tok & {"phone", "mobile", "tel", "telephone", "cellphone"}:
        return _mobile(rng)
    if "fax" in tok:
        return f"0571-{rng.randint(81000000, 89999999)}"
    if tok & {"email", "mail"}:
        local = rng.choice(_PINYIN_FAMILY) + rng.choice(_PINYIN_GIVEN) + _digits(rng, 3)
        return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
    if tok & {"postcode", "postal", "zip", "zipcode"}:
        return rng.choice(_POSTCODES)
    if "code" in tok and tok & _REGION_CODE_WORDS:
        return slot.region.code
    if "code" in tok and "city" in tok:
        return slot.region.code[:4] + "00"
    if "code" in tok and "province" in tok:
        return slot.region.code[:2] + "0000"
    return None


def _place_org_or_name(slot: _Slot, rng: Random, role: _Role) -> str | None:
    """Address, native place, an organisation's or a person's name, province, city, district."""
    tok = slot.tokens
    snake = slot.snake
    if tok & {"address", "addr", "residence", "domicile", "location"}:
        return _address(rng, slot.region)
    if tok & {"native", "hometown", "birthplace", "origin"} or "birth_place" in snake:
        return f"{slot.region.province}{'' if slot.region.city == slot.region.province else slot.region.city}"
    if _is_org_field(slot):
        kind = tok | slot.hints if snake == "name" else tok
        return _org_name(rng, kind, slot.hints, slot.region)
    if role is not None:  # name, surname, given
        person = slot.person
        return _person_name(rng, person.male if person else None, role[0])
    if "province" in tok:
        return slot.region.province
    if "city" in tok:
        return slot.region.city
    if tok & {"district", "county"}:
        return slot.region.district
    return None


def _web_or_profile(slot: _Slot, rng: Random, role: _Role) -> str | None:
    """URL, IP, plate; ethnicity, nationality, occupation, education, marital status ..."""
    tok = slot.tokens
    if tok & {"url", "website", "homepage", "link"}:
        return f"https://www.example.gov.cn/art/{slot.anchor.year}/{rng.randint(10000, 99999)}.html"
    if tok & {"ip"}:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if "plate" in tok:
        prefix = _PLATE_PREFIX.get(slot.region.province, "浙")
        tail = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(5))
        return f"{prefix}{rng.choice('AAABC')}{tail}"
    if tok & {"ethnic", "ethnicity", "minzu"} or slot.snake == "nation":
        return "汉族" if rng.random() < 0.9 else rng.choice(_ETHNIC_MINORITIES)
    if tok & {"nationality", "country", "citizenship"}:
        return "中国"
    if tok & {"occupation", "profession", "job"}:
        return rng.choice(_OCCUPATIONS)
    if tok & {"education", "degree"}:
        return rng.choice(_EDUCATION)
    if "marital" in tok:
        return rng.choice(_MARITAL)
    if "blood" in tok:
        return rng.choice(("A", "B", "O", "AB"))
    if tok & {"relation", "relationship"}:
        return rng.choice(_RELATIONS)
    return None


def _wording(slot: _Slot, rng: Random, role: _Role) -> str | None:
    """Enterprise type, business scope, cause of death and its ICD code, status, remark, title."""
    tok = slot.tokens
    if tok & {"enterprise", "company", "business", "entity"} and tok & {"type", "kind"}:
        return rng.choice(_ENTERPRISE_TYPES)
    if "scope" in tok:
        return "；".join(rng.sample(_SCOPE_ITEMS, rng.randint(2, 4)))
    if tok & {"icd", "icd10"}:
        return _DISEASES[_shared(slot, "disease", len(_DISEASES))][1]
    if tok & {"cause", "disease", "diagnosis"}:
        return _DISEASES[_shared(slot, "disease", len(_DISEASES))][0]
    if tok & STATUS:
        return rng.choice(_STATUS_WORDS)
    if tok & {"remark", "note", "description", "comment", "memo", "reason", "opinion"}:
        return rng.choice(_REMARKS)
    if tok & {"title", "subject"}:
        return f"关于{rng.choice(_TITLE_TOPICS)}的{rng.choice(_TITLE_KINDS)}"
    return None


def _identifier_or_words(slot: _Slot, rng: Random) -> str:
    """Account and serial numbers, ids, digests, dates and times; else the doc's example or words."""
    tok = slot.tokens
    snake = slot.snake
    if "account" in tok or ("card" in tok and "bank" in tok):
        body = "62" + _digits(rng, 16)
        return body + luhn_digit(body)
    if "uuid" in tok or "guid" in tok or snake == "id" or snake.endswith("_id"):
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if tok & {"hash", "digest", "checksum", "sha256"}:
        return rng.randbytes(32).hex()
    if "md5" in tok:
        return rng.randbytes(16).hex()
    if "date" in tok:
        return _date(slot, rng).isoformat()
    if tok & TIME_TOKENS:
        return str(jsoncodec.to_jsonable(_timestamp(slot, rng)))
    if tok & {"no", "number", "num", "serial", "sn", "licence", "license", "certificate", "permit"}:
        return _serial_no(rng, slot)
    if "code" in tok:
        if slot.example:
            return _from_example(rng, slot.example, slot)
        return f"{rng.choice(string.ascii_uppercase)}{_digits(rng, 6)}"
    if tok & USER:
        return rng.choice(_PINYIN_FAMILY) + rng.choice(_PINYIN_GIVEN) + _digits(rng, 2)
    if slot.example:
        return _from_example(rng, slot.example, slot)
    return f"{rng.choice(_WORDS)}{rng.choice(_WORDS)}{_digits(rng, 4)}"


_STRING_RULES = (_person_fact, _code_or_contact, _place_org_or_name, _web_or_profile, _wording)


def _shared(slot: _Slot, what: str, n: int) -> int:
    """A choice among ``n`` shared by the fields of one record (a cause of death, its ICD code)."""
    text = f"{slot.stream}\x1f{slot.record_path}#{what}\x1f{slot.index}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def generate(schema: Schema, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` sample records of ``schema`` in fastavro's Python form.

    The same ``(schema, count, seed)`` always gives the same records, and the
    first records of a larger ``count`` equal those of a smaller one. Raises
    :class:`~exchange.errors.SchemaError` if the schema is not a valid record schema.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    gen = _Generator(schema, seed)
    return [gen.record(i) for i in range(count)]


def iter_json_lines(schema: Schema, count: int, seed: int = 0) -> Iterator[str]:
    """The records of :func:`generate` as JSON Lines (no newline), made one at a time."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    gen = _Generator(schema, seed)
    for i in range(count):
        yield jsoncodec.dumps(gen.record(i))

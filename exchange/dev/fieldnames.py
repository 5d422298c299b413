"""How the sample generator reads a field's name: its words, and the person it is about.

A field name is cut into snake-case words (``motherIdNumber`` → ``mother``,
``id``, ``number``, with plural forms folded); the word sets below (read once
from ``sample_data/field_words.json``) say what those words point to: a child,
an adult, an organisation, money, an expiry ... :func:`person_role` tells the
fields about a person (``mother_id_number`` is the ID number of ``mother``).
A name none of whose words is known (a pinyin abbreviation such as ``xm``)
is read from the Chinese words of the field's ``doc`` instead.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

_FIELD_WORDS = json.loads(
    resources.files(__package__).joinpath("sample_data", "field_words.json").read_text("utf-8")
)


def _word_set(key: str) -> frozenset[str]:
    return frozenset(_FIELD_WORDS[key])


SCHOOLING = _word_set("schooling")
ENROL = _word_set("enrol")
CHILD = _word_set("child")
NEWBORN = _word_set("newborn")
ELDER = _word_set("elder")
ADULT = _word_set("adult")
PARENT = _word_set("parent")
FEMALE = _word_set("female")
MALE = _word_set("male")
_SUBJECT_ALIASES = _word_set("subject_aliases")
_KEY_NOISE = _word_set("key_noise")
_PERSON_NOUNS = _word_set("person_nouns")
ORG = _word_set("org")
ORG_FIELD_ENDINGS = ORG | {"name", "title", "by"}
HOSPITAL = _word_set("hospital")
GOV = _word_set("gov")
SCHOOL = _word_set("school")
_THING = _word_set("thing")
_PLACE = _word_set("place")
USER = _word_set("user")
MONEY = _word_set("money")
PHOTO = _word_set("photo")
ATTACHMENT = _word_set("attachment")
TRUE_MOSTLY = _word_set("true_mostly")
FALSE_MOSTLY = _word_set("false_mostly")
TIME_TOKENS = _word_set("time_tokens")
EXPIRY = _word_set("expiry")
EVENT = _word_set("event")
START = _word_set("start")
STATUS = _word_set("status")

_ID_RE = re.compile(
    r"(?:^|_)(?:id_?card|id_?number|id_?num|id_?no|citizen_?id|identity_?(?:card|number|no)"
    r"|resident_?id|sfzh|sfzhm|sfz|gmsfhm)(?:_(?:no|number|num|code))?$"
)
_BIRTH_RE = re.compile(
    r"(?:^|_)(?:birth_?date|birth_?day|date_of_birth|dob|birth|born(?:_on|_date)?"
    r"|(?:birth|born)_?(?:datetime|time|timestamp|year)|csrq)$"
)
_GENDER_RE = re.compile(r"(?:^|_)(?:gender|sex|xb)(?:_code)?$")
_AGE_RE = re.compile(r"(?:^|_)(?:age|nianling)$")
_NAME_ENDINGS: dict[str, str] = _FIELD_WORDS["name_endings"]
# For opaque field names (nothing recognised), the field's doc decides.
_DOC_ALIASES = tuple((str(word), str(alias)) for word, alias in _FIELD_WORDS["doc_aliases"])


def plural_forms(token: str) -> set[str]:
    forms = {token}
    if token == "children":  # noqa: S105 - a word, not a password
        forms.add("child")
    elif len(token) > 4 and token.endswith("ies"):
        forms.add(token[:-3] + "y")
    elif len(token) > 4 and token.endswith("es"):
        forms |= {token[:-2], token[:-1]}
    elif len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        forms.add(token[:-1])
    return forms


@lru_cache(maxsize=4096)
def snake_name(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


@lru_cache(maxsize=4096)
def name_tokens(snake: str) -> frozenset[str]:
    out: set[str] = set()
    for t in snake.split("_"):
        if t:
            out |= plural_forms(t)
    return frozenset(out)


_VOCABULARY: frozenset[str] = frozenset[str]().union(
    CHILD,
    NEWBORN,
    ELDER,
    ADULT,
    _SUBJECT_ALIASES,
    _PERSON_NOUNS,
    ORG,
    _THING,
    _PLACE,
    USER,
    MONEY,
    PHOTO,
    ATTACHMENT,
    TRUE_MOSTLY,
    FALSE_MOSTLY,
    TIME_TOKENS,
    EXPIRY,
    EVENT,
    START,
    STATUS,
    _NAME_ENDINGS,
    _word_set("other_known"),
)


def effective_snake(name: str, doc: Any) -> str:
    """The field's snake-case name, or a stand-in taken from its doc if the name is opaque."""
    snake = snake_name(name)
    if name_tokens(snake) & _VOCABULARY or not isinstance(doc, str):
        return snake
    for word, alias in _DOC_ALIASES:
        if word in doc:
            return alias
    return snake


def _canonical_key(tokens: list[str]) -> str:
    key = "_".join(t for t in tokens if t not in _KEY_NOISE)
    return "" if key in _SUBJECT_ALIASES else key


@lru_cache(maxsize=4096)
def person_role(snake: str) -> tuple[str, str, str] | None:
    """``(role, person key, prefix)`` for fields describing a person, else ``None``.

    Roles: ``id``, ``birth``, ``gender``, ``age``, ``name``, ``surname``, ``given``. The
    prefix is what names the person (``mother`` in ``mother_id_number``); the key
    is the prefix without noise words, ``""`` for the record's subject.
    """
    for role, regex in (
        ("id", _ID_RE),
        ("birth", _BIRTH_RE),
        ("gender", _GENDER_RE),
        ("age", _AGE_RE),
    ):
        m = regex.search(snake)
        if m:
            before = snake[: m.start()]
            return role, _canonical_key(before.split("_")), before
    parts = [p for p in snake.split("_") if p]
    if not parts:
        return None
    if parts[-1] in _NAME_ENDINGS:
        prefix = parts[:-1]
        found = set().union(*(plural_forms(p) for p in prefix)) if prefix else set()
        if found & (ORG | _THING | _PLACE | USER | {"org"}):
            return None
        role = _NAME_ENDINGS[parts[-1]]
        if role == "name" and prefix and prefix[-1] in ("last", "family"):
            role = "surname"
        elif role == "name" and prefix and prefix[-1] in ("first", "given"):
            role = "given"
        return role, _canonical_key(prefix), "_".join(prefix)
    if parts[-1] in _PERSON_NOUNS or (parts[-1] == "by" and not name_tokens(snake) & GOV):
        named = parts if parts[-1] != "by" else parts[:-1]
        return "name", _canonical_key(named), "_".join(named)
    return None

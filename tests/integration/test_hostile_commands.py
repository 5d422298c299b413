"""Hostile and malformed commands: each refused with a clear reason, nothing applied, audited.

Unknown ids, another department's resource, row filters trying to escape
their sandbox (undefined functions, huge or deeply nested expressions,
results that are not true or false), masks on unknown fields, dates in the
past, absurdly long text (a purpose of 1 MB), text that is not UTF-8 and
control characters in ids and purposes. Through the Python API on the real
broker; for each case (see :func:`refusal_support.refused_and_audited`):

* the caller gets :class:`CommandRefused` (``UnknownResource`` /
  ``PermissionDenied`` for a subscription) whose message says why, short
  and printable whatever it was sent;
* the grant state a fresh process reads from the topics is unchanged;
* exactly one ``COMMAND_REFUSED`` (``SUBSCRIPTION_DENIED``) entry appeared
  on ``gov.audit``, by the department, naming the resource, with the
  same reason; a value too long or not printable appears in it escaped and
  cut short.

At the end the applications are still pending and can still be approved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from refusal_support import audit_log, new_refusals, refused_and_audited, snapshot

from exchange.audit.entry import Action
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control.state import load
from exchange.enforce.rowfilter import MAX_FILTER_CHARS
from exchange.errors import CommandRefused, UnknownResource
from exchange.sharing import limits as command_limits
from exchange.sharing.records import AppStatus

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"  # provided by health
POP = "population_basic"  # provided by police
MB = 1_000_000
NOT_UTF8 = b"\xff\xfe\xc0 purpose".decode("utf-8", "surrogateescape")  # as Python reads bad bytes


@pytest.fixture(scope="module")
async def apps(bus: Connection, loaded_catalog: Catalog) -> dict[str, str]:
    """A pending application for BMC (police) and for POP (civil_affairs); a grant on POP."""
    async with Department(bus, "police") as police:
        bmc = await police.apply(
            BMC, fields=["mother_name", "mother_id_number"], purpose="新生儿落户 registration"
        )
    async with Department(bus, "civil_affairs") as civil:
        pop = await civil.apply(
            POP, fields=["name", "address"], purpose="低保审核 allowance review"
        )
        granted = await civil.apply(POP, fields=["name"], purpose="婚姻登记 marriage registration")
    async with Department(bus, "police") as police:
        grant = await police.approve(granted)
    return {"bmc": bmc, "pop": pop, "grant": grant}


# ------------------------------------------------------------------ unknown ids


async def test_approval_of_an_unknown_application_is_refused(bus: Connection, apps: Any) -> None:
    reason = await refused_and_audited(
        bus, "health", "approve", "APP-20990101-deadbeef", resource=None
    )
    assert reason == "unknown application 'APP-20990101-deadbeef'"


async def test_rejection_of_an_unknown_application_is_refused(bus: Connection, apps: Any) -> None:
    reason = await refused_and_audited(
        bus, "health", "reject", "APP-nope", reason="不批准", resource=None
    )
    assert reason == "unknown application 'APP-nope'"


async def test_revocation_of_an_unknown_grant_is_refused(bus: Connection, apps: Any) -> None:
    reason = await refused_and_audited(
        bus, "health", "revoke", "GR-nope", reason="撤销", resource=None
    )
    assert reason == "unknown grant 'GR-nope'"


async def test_application_for_an_unknown_resource_is_refused(bus: Connection, apps: Any) -> None:
    reason = await refused_and_audited(
        bus,
        "police",
        "apply",
        "vaccination_record",
        fields=["name"],
        purpose="p",
        resource="vaccination_record",
    )
    assert reason.startswith("unknown resource 'vaccination_record'")


async def test_subscription_to_an_unknown_resource_is_denied(bus: Connection, apps: Any) -> None:
    reason = await refused_and_audited(
        bus,
        "hrss",
        "subscribe",
        "vaccination_record",
        resource="vaccination_record",
        raises=UnknownResource,
    )
    assert reason.startswith("unknown resource 'vaccination_record'")


# ------------------------------------------------- another department's resource


@pytest.mark.parametrize("command", ["approve", "reject"])
async def test_answering_an_application_for_another_departments_resource_is_refused(
    bus: Connection, apps: dict[str, str], command: str
) -> None:
    kw = {"reason": "不批准"} if command == "reject" else {}
    reason = await refused_and_audited(
        bus, "health", command, apps["pop"], resource=POP, consumer="civil_affairs", **kw
    )
    what = "approve" if command == "approve" else "reject"
    assert reason == (
        f"only the provider of {POP!r} (police) may {what} its applications; 'health' may not"
    )


async def test_revoking_another_departments_grant_is_refused(
    bus: Connection, apps: dict[str, str]
) -> None:
    reason = await refused_and_audited(
        bus, "health", "revoke", apps["grant"], reason="越权", resource=POP
    )
    assert (
        reason == f"only the provider of {POP!r} (police) may revoke its grants; 'health' may not"
    )


async def test_the_applicant_approving_its_own_application_is_refused(
    bus: Connection, apps: dict[str, str]
) -> None:
    reason = await refused_and_audited(bus, "police", "approve", apps["bmc"], resource=BMC)
    assert "only the provider of 'birth_medical_certificate' (health)" in reason


# ------------------------------------------------------ row filters that escape


@pytest.mark.parametrize(
    ("row_filter", "expected"),
    [
        pytest.param(
            "foo(mother_name)",
            "row filter refused: the row filter calls foo, which is not a function",
            id="undefined-function",
        ),
        pytest.param(
            '__import__("os").system("id") == 0',
            "row filter refused: the row filter",
            id="python-import",
        ),
        pytest.param(
            'mother_name.exists(c, c == "a") && [1].all(x, x > 0)',
            "row filter refused: the row filter uses 2 comprehension macros",
            id="two-comprehensions",
        ),
        pytest.param(
            " || ".join(['mother_name == "张"'] * 200),
            "the row filter is ",
            id="huge",
        ),
        pytest.param(
            "(" * 200 + 'mother_name == "张"' + ")" * 200,
            "row filter refused: the row filter does not compile",
            id="deeply-nested-parentheses",
        ),
        pytest.param(
            "[" * 150 + "mother_name" + "]" * 150 + " == []",
            "row filter refused: the row filter does not compile",
            id="deeply-nested-lists",
        ),
        pytest.param("mother_name", "row filter refused: it gives str ", id="string-result"),
        pytest.param(
            "size(mother_name) + 1", "row filter refused: it gives int ", id="number-result"
        ),
        pytest.param(
            "1 + 2", "row filter refused: the row filter uses no field and gives 3", id="constant"
        ),
        pytest.param("   ", "row filter refused: the row filter is empty", id="empty"),
        pytest.param(
            'mother_name == "\x1b[2J"',
            "the row filter contains the control or format character U+001B",
            id="terminal-escape",
        ),
    ],
)
async def test_a_hostile_row_filter_is_refused(
    bus: Connection, apps: dict[str, str], row_filter: str, expected: str
) -> None:
    reason = await refused_and_audited(
        bus, "health", "approve", apps["bmc"], row_filter=row_filter, resource=BMC
    )
    assert reason.startswith(expected), reason
    if len(row_filter) > MAX_FILTER_CHARS:
        assert f"is {len(row_filter)} characters long" in reason


# ------------------------------------------------------------- masks and dates


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        ({"blood_type": "replace"}, "mask on 'blood_type': not a field this consumer receives"),
        ({"father_name": "surname"}, "mask on 'father_name': not a field this consumer receives"),
        ({"mother_name": "keep:999999"}, "mask on 'mother_name': "),
        ({"mother_name": "x" * MB}, "the mask rule for 'mother_name' is 1000000 characters"),
    ],
    ids=["unknown-field", "field-not-granted", "bad-parameter", "1MB-rule"],
)
async def test_a_bad_mask_is_refused(
    bus: Connection, apps: dict[str, str], masks: dict[str, str], expected: str
) -> None:
    reason = await refused_and_audited(
        bus, "health", "approve", apps["bmc"], masks=masks, resource=BMC
    )
    assert reason.startswith(expected), reason


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "valid-until 2000-01-01T08:00:00+08:00 is not"),
        (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1), "is not in the future"),
        (dt.datetime(2099, 1, 1), "valid-until 2099-01-01T00:00:00 has no time zone"),
    ],
    ids=["long-past", "a-second-ago", "no-time-zone"],
)
async def test_a_bad_expiry_is_refused(
    bus: Connection, apps: dict[str, str], until: dt.datetime, expected: str
) -> None:
    reason = await refused_and_audited(
        bus, "health", "approve", apps["bmc"], until=until, resource=BMC
    )
    assert expected in reason, reason


# ------------------------------------------------------- absurdly long text


async def test_a_purpose_of_one_megabyte_is_refused(bus: Connection, apps: Any) -> None:
    reason = await refused_and_audited(
        bus, "police", "apply", BMC, fields=["mother_name"], purpose="用" * MB, resource=BMC
    )
    assert (
        reason == "the purpose of use (用途) is 1000000 characters long; at most 2000 are allowed"
    )
    [entry] = [e for e in (await audit_log(bus))[-5:] if e.reason == reason]
    assert entry.purpose is not None
    assert len(entry.purpose) < 200  # quoted, cut short: the log holds no megabyte


@pytest.mark.parametrize(
    ("command", "args", "kw", "resource", "expected"),
    [
        (
            "apply",
            (BMC,),
            {"fields": ["mother_name"], "purpose": "p", "legal_basis": "法" * MB},
            BMC,
            "the legal basis is 1000000 characters long",
        ),
        (
            "apply",
            (BMC,),
            {"fields": ["f" * MB], "purpose": "p"},
            BMC,
            "the field 'fff",
        ),
        (
            "apply",
            (BMC,),
            {"fields": [f"f{i}" for i in range(10_000)], "purpose": "p"},
            BMC,
            "10000 fields named; at most 500 are allowed",
        ),
        (
            "apply",
            ("r" * MB,),
            {"fields": ["mother_name"], "purpose": "p"},
            "r" * MB,
            "the resource 'rrr",
        ),
        ("approve", ("A" * MB,), {}, None, "the application id 'AAA"),
        ("approve", ("bmc",), {"purpose": "x" * MB}, BMC, "the purpose of use (用途) is 1000000"),
        ("reject", ("bmc",), {"reason": "r" * MB}, BMC, "the reason is 1000000 characters long"),
        ("revoke", ("G" * MB,), {"reason": "r"}, None, "the grant id 'GGG"),
    ],
    ids=[
        "legal-basis",
        "field-name",
        "ten-thousand-fields",
        "resource-id",
        "application-id",
        "approval-purpose",
        "rejection-reason",
        "grant-id",
    ],
)
async def test_absurdly_long_text_is_refused(
    bus: Connection,
    apps: dict[str, str],
    command: str,
    args: tuple[Any, ...],
    kw: dict[str, Any],
    resource: str | None,
    expected: str,
) -> None:
    actor = "police" if command == "apply" else "health"
    args = tuple(apps.get(a, a) for a in args)
    reason = await refused_and_audited(bus, actor, command, *args, resource=resource, **kw)
    assert reason.startswith(expected), reason
    if "'" in expected:
        assert "1000000 characters long; at most 200 are allowed" in reason


async def test_a_subscription_to_a_one_megabyte_resource_id_is_denied(
    bus: Connection, apps: Any
) -> None:
    reason = await refused_and_audited(
        bus, "hrss", "subscribe", "n" * MB, resource="n" * MB, raises=CommandRefused
    )
    assert reason.endswith("is 1000000 characters long; at most 200 are allowed")


# ------------------------------------------- not UTF-8, control characters


@pytest.mark.parametrize(
    ("command", "args", "kw", "resource", "expected"),
    [
        (
            "apply",
            (BMC,),
            {"fields": ["mother_name"], "purpose": NOT_UTF8},
            BMC,
            "the purpose of use (用途) contains a lone surrogate U+DCFF "
            "(bytes that are not UTF-8) at position 0",
        ),
        (
            "apply",
            (BMC,),
            {"fields": ["mother_name"], "purpose": "落户\x00登记"},
            BMC,
            "the purpose of use (用途) contains the control or format character U+0000 "
            "at position 2",
        ),
        (
            "apply",
            (BMC,),
            {"fields": ["mother_name"], "purpose": "用途 \u202egnp.exe"},
            BMC,
            "the purpose of use (用途) contains the control or format character U+202E",
        ),
        (
            "apply",
            (BMC,),
            {"fields": ["mother_name\n"], "purpose": "p"},
            BMC,
            "the field 'mother_name\\n' contains the control or format character U+000A",
        ),
        (
            "apply",
            ("birth_medical\x1b[31m_certificate",),
            {"fields": ["mother_name"], "purpose": "p"},
            "birth_medical\x1b[31m_certificate",
            "the resource 'birth_medical\\x1b[31m_certificate' contains the control",
        ),
        (
            "approve",
            ("APP-\x00",),
            {},
            None,
            "the application id 'APP-\\x00' contains the control or format character U+0000",
        ),
        (
            "approve",
            ("APP-" + NOT_UTF8,),
            {},
            None,
            "the application id 'APP-\\udcff\\udcfe\\udcc0 purpose' contains a lone surrogate",
        ),
        (
            "approve",
            ("bmc",),
            {"masks": {"mother_name\x07": "surname"}},
            BMC,
            "the masked field 'mother_name\\x07' contains the control",
        ),
        (
            "reject",
            ("bmc",),
            {"reason": "不批准\x1b]0;pwned\x07"},
            BMC,
            "the reason contains the control or format character U+001B at position 3",
        ),
        (
            "revoke",
            ("GR-" + NOT_UTF8,),
            {"reason": "r"},
            None,
            "the grant id 'GR-\\udcff",
        ),
    ],
    ids=[
        "purpose-not-utf8",
        "purpose-nul",
        "purpose-rtl-override",
        "field-newline",
        "resource-terminal-escape",
        "application-id-nul",
        "application-id-not-utf8",
        "mask-field-bell",
        "reason-terminal-escape",
        "grant-id-not-utf8",
    ],
)
async def test_text_that_is_not_utf8_or_has_control_characters_is_refused(
    bus: Connection,
    apps: dict[str, str],
    command: str,
    args: tuple[Any, ...],
    kw: dict[str, Any],
    resource: str | None,
    expected: str,
) -> None:
    actor = "police" if command == "apply" else "health"
    args = tuple(apps.get(a, a) for a in args)
    reason = await refused_and_audited(bus, actor, command, *args, resource=resource, **kw)
    assert reason.startswith(expected), reason


@pytest.mark.parametrize(
    ("department", "expected"),
    [
        ("police\x00", "the department 'police\\x00' contains the control or format character"),
        ("po" + NOT_UTF8, "the department 'po\\udcff\\udcfe\\udcc0 purpose' contains a lone"),
        ("p" * MB, "the department 'ppp"),
    ],
    ids=["nul", "not-utf8", "one-megabyte"],
)
async def test_acting_as_a_hostile_department_name_is_refused_and_audited(
    bus: Connection, apps: Any, department: str, expected: str
) -> None:
    before = await snapshot(bus)
    seen = {e.id for e in await audit_log(bus)}
    with pytest.raises(CommandRefused) as exc:
        async with Department(bus, department):
            pass
    reason = str(exc.value)
    assert reason.startswith(expected), reason
    assert len(reason) < 300
    [entry] = await new_refusals(bus, seen)
    assert (entry.action, entry.details["command"]) == (Action.COMMAND_REFUSED, "start")
    assert entry.actor == command_limits.safe(department, command_limits.MAX_ID_CHARS)
    assert entry.actor.isprintable()
    assert len(entry.actor) < 200
    assert entry.reason == reason
    assert await snapshot(bus) == before


# ------------------------------------------------------------------ afterwards


async def test_after_all_that_the_applications_are_pending_and_can_be_approved(
    bus: Connection, apps: dict[str, str]
) -> None:
    state = await load(bus)
    assert state.book.applications[apps["bmc"]].status is AppStatus.PENDING
    assert state.book.applications[apps["pop"]].status is AppStatus.PENDING
    assert set(state.book.grants) == {apps["grant"]}
    async with Department(bus, "health") as health:
        gid = await health.approve(
            apps["bmc"],
            row_filter='mother_name.startsWith("张") || mother_name == null',
            masks={"mother_id_number": "keep:6:4"},
            until=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
            purpose="新生儿落户\n household registration",  # a newline is fine in a purpose
        )
    async with Department(bus, "police") as police:
        view = police.explain(BMC)
    assert view.grant_id == gid
    assert view.masks == {"mother_id_number": "keep:6:4"}

"""The generated ACLs: every department can do its job, and nothing more."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from exchange.admin.acls import ADMIN, AUDITOR, ROUTER, Op, allowed, generate, to_kafka_acls, user
from exchange.bus import topics
from exchange.catalog.model import Catalog


@pytest.fixture(scope="module")
def rules(sample_catalog: Catalog):  # type: ignore[no-untyped-def]
    return generate(sample_catalog)


def test_each_department_publishes_its_own_sources_only(rules, sample_catalog: Catalog) -> None:
    for res in sample_catalog.resources.values():
        src = topics.source(res.provider, res.id)
        for dept in sample_catalog.departments:
            assert allowed(rules, user(dept), "topic", src, Op.WRITE) is (dept == res.provider)
            assert not allowed(rules, user(dept), "topic", src, Op.READ)


def test_each_department_reads_its_own_deliveries_only(rules, sample_catalog: Catalog) -> None:
    for dept in sample_catalog.departments:
        for other in sample_catalog.departments:
            dlv = topics.delivery(other, "birth_medical_certificate")
            assert allowed(rules, user(dept), "topic", dlv, Op.READ) is (dept == other)
            assert not allowed(rules, user(dept), "topic", dlv, Op.WRITE)
        assert allowed(rules, user(dept), "group", f"{dept}.household-system", Op.READ)
        others = [o for o in sample_catalog.departments if o != dept]
        assert not allowed(rules, user(dept), "group", f"{others[0]}.x", Op.READ)
        assert not allowed(rules, user(dept), "group", "gov-exchange-router", Op.READ)


def test_a_prefix_cannot_be_abused_by_a_department_whose_id_extends_another() -> None:
    # 'police' must not match 'police_archive' sources: prefixes end with a dot
    from exchange.catalog.model import Department

    depts = {
        d: Department(id=d, name_zh="部门", name_en="Dept", code=f"11330000{n:09d}X")
        for n, d in enumerate(["police", "police_archive"])
    }
    rules = generate(Catalog(departments=depts, resources={}))
    assert not allowed(rules, user("police"), "topic", "gov.src.police_archive.x", Op.WRITE)
    assert not allowed(rules, user("police"), "topic", "gov.dlv.police_archive.x", Op.READ)


def test_departments_cannot_touch_the_catalog_dead_letters_or_read_the_audit_log(
    rules, sample_catalog: Catalog
) -> None:
    for dept in sample_catalog.departments:
        p = user(dept)
        assert not allowed(rules, p, "topic", topics.CATALOG, Op.WRITE)
        assert not allowed(rules, p, "topic", topics.SCHEMAS, Op.WRITE)
        assert not allowed(rules, p, "topic", topics.AUDIT, Op.READ)
        assert not allowed(
            rules, p, "topic", topics.dead_letter("birth_medical_certificate"), Op.READ
        )
        assert not allowed(rules, p, "topic", "gov.src.x.y", Op.CREATE)
        # what it needs for the sharing workflow
        assert allowed(rules, p, "topic", topics.GRANTS, Op.WRITE)
        assert allowed(rules, p, "topic", topics.CATALOG, Op.READ)
        assert allowed(rules, p, "topic", topics.SCHEMAS, Op.READ)


def test_router_auditor_and_admin_have_what_they_need_and_no_more(rules) -> None:
    r = user(ROUTER)
    assert allowed(rules, r, "topic", "gov.src.health.birth_medical_certificate", Op.READ)
    assert allowed(rules, r, "topic", "gov.dlv.police.birth_medical_certificate", Op.WRITE)
    assert allowed(rules, r, "topic", "gov.dlv.police.birth_medical_certificate", Op.CREATE)
    assert allowed(rules, r, "topic", "gov.dlq.birth_medical_certificate", Op.WRITE)
    assert allowed(rules, r, "topic", topics.AUDIT, Op.WRITE)
    # the command audit: one router of the group reads gov.ctl.grants and gov.audit
    assert allowed(rules, r, "topic", topics.AUDIT, Op.READ)
    assert allowed(rules, r, "group", topics.COMMAND_AUDIT_GROUP, Op.READ)
    assert not allowed(rules, r, "topic", "gov.src.health.birth_medical_certificate", Op.WRITE)
    assert not allowed(rules, r, "topic", "gov.dlv.police.birth_medical_certificate", Op.READ)
    assert not allowed(rules, r, "topic", topics.CATALOG, Op.WRITE)
    a = user(AUDITOR)
    assert allowed(rules, a, "topic", topics.AUDIT, Op.READ)
    assert not allowed(rules, a, "topic", topics.AUDIT, Op.WRITE)
    assert not allowed(rules, a, "topic", "gov.dlv.police.birth_medical_certificate", Op.READ)
    m = user(ADMIN)
    assert allowed(rules, m, "topic", topics.CATALOG, Op.WRITE)
    assert not allowed(rules, m, "topic", "gov.dlv.police.birth_medical_certificate", Op.READ)


def test_every_binding_is_needed(rules, sample_catalog: Catalog) -> None:
    """Least privilege: no duplicate bindings, no wildcard, no binding on an unknown principal."""
    assert len(rules) == len(set(rules))
    principals = {user(d) for d in sample_catalog.departments} | {
        user(ROUTER),
        user(ADMIN),
        user(AUDITOR),
    }
    for a in rules:
        assert a.principal in principals
        assert a.name not in ("*", "", "gov.", "gov")
        assert a.pattern in ("literal", "prefixed")
        if a.pattern == "prefixed":
            assert a.name.endswith("."), a


def test_cli_prints_a_kafka_acls_script_and_json() -> None:
    script = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "acls", "--format", "kafka-acls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--allow-principal User:police --operation Write --topic gov.src.police. " in script
    assert "--resource-pattern-type prefixed" in script
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "exchange.cli", "acls", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert {"principal", "resource_type", "name", "pattern", "operation", "permission"} <= set(
        data[0]
    )


def test_kafka_acls_script_quotes_names() -> None:
    from exchange.admin.acls import Acl

    out = to_kafka_acls([Acl("User:x", "topic", "gov.src.x.", "prefixed", Op.WRITE)])
    assert out.startswith("#!/bin/sh")
    assert "--topic gov.src.x." in out

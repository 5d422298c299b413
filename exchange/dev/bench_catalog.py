"""A synthetic provincial-scale catalog and shared list for benchmarks.

57 departments and ~70 resources (Zhejiang's provincial shared list opened
3,600 sharing permissions across 57 provincial units), built as an ordinary
catalog directory so the benchmark loads it the way an operator would, and
grant events written straight to ``gov.ctl.grants`` (the permission manager
checks every one of them on replay, exactly as if they came from the API).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from exchange.sharing.records import EventKind, GrantEvent

SAMPLE = Path(__file__).resolve().parents[2] / "schemas"
BENCH_RESOURCE = "bench_enterprise"
PROVIDER = "dept00"

UNCONDITIONAL = [
    "credit_code",
    "enterprise_name",
    "enterprise_type",
    "established_date",
    "region_code",
    "registration_authority",
    "status",
    "approved_date",
    "updated_at",
]
CONDITIONAL = ["legal_representative", "registered_capital", "business_term_end", "address"]
NOT_SHARED = ["business_scope"]


def dept_id(i: int) -> str:
    return f"dept{i:02d}"


def dept_code(i: int) -> str:
    return f"11330000{i:09d}X"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SAMPLE / "avro" / "enterprise_registration.avsc").read_text(encoding="utf-8")
    )
    schema["name"] = name
    schema["namespace"] = "gov.exchange.bench"
    return schema


def write_catalog(root: Path, departments: int = 57, resources: int = 70) -> None:
    """Write a catalog directory: ``departments`` departments, ``resources`` + 1 resources."""
    (root / "resources").mkdir(parents=True, exist_ok=True)
    (root / "avro").mkdir(exist_ok=True)
    depts = [
        {
            "id": dept_id(i),
            "name_zh": f"省直单位{i:02d}",
            "name_en": f"Provincial unit {i:02d}",
            "code": dept_code(i),
        }
        for i in range(departments)
    ]
    (root / "departments.yaml").write_text(
        yaml.safe_dump({"departments": depts}, allow_unicode=True), encoding="utf-8"
    )
    specs = [(BENCH_RESOURCE, 0, "BenchEnterprise")] + [
        (f"res{i:03d}", 1 + i % (departments - 1), f"Res{i:03d}") for i in range(resources)
    ]
    for seq, (rid, provider, record_name) in enumerate(specs):
        (root / "avro" / f"{rid}.avsc").write_text(
            json.dumps(_schema(record_name), ensure_ascii=False), encoding="utf-8"
        )
        fields: dict[str, dict[str, str]] = {}
        for f in UNCONDITIONAL:
            fields[f] = {"share_type": "unconditional"}
        for f in CONDITIONAL:
            fields[f] = {"share_type": "conditional"}
        for f in NOT_SHARED:
            fields[f] = {"share_type": "not_shared"}
        resource = {
            "id": rid,
            "code": f"201003/{dept_code(provider)}-{seq:06d}",
            "name_zh": f"基准资源{seq}",
            "name_en": f"Benchmark resource {seq}",
            "provider": dept_id(provider),
            "summary": "基准测试用资源 Benchmark resource",
            "schema": f"../avro/{rid}.avsc",
            "key": "credit_code",
            "update_cycle": "real-time",
            "share": {
                "type": "conditional",
                "conditions": "经审批 after approval",
                "legal_basis": "《政务信息资源共享管理暂行办法》(国发〔2016〕51号)",
            },
            "open_attribute": "not_open",
            "fields": fields,
        }
        (root / "resources" / f"{rid}.yaml").write_text(
            yaml.safe_dump(resource, allow_unicode=True), encoding="utf-8"
        )


def grant_events(count: int, departments: int = 57, resources: int = 70) -> list[GrantEvent]:
    """``count`` application + approval pairs spread over the other resources."""
    events: list[GrantEvent] = []
    pairs = [
        (dept_id(c), f"res{r:03d}", dept_id(1 + r % (departments - 1)))
        for r in range(resources)
        for c in range(departments)
        if c != 1 + r % (departments - 1)
    ]
    if count > len(pairs):
        raise ValueError(f"at most {len(pairs)} grants fit this catalog")
    for n, (consumer, resource, provider) in enumerate(pairs[:count]):
        app_id = f"APP-BENCH-{n:05d}"
        events.append(
            GrantEvent(
                kind=EventKind.APPLIED,
                actor=consumer,
                consumer=consumer,
                resource=resource,
                application_id=app_id,
                fields=tuple(CONDITIONAL[:2]),
                purpose="基准 benchmark",
            )
        )
        events.append(
            GrantEvent(
                kind=EventKind.APPROVED,
                actor=provider,
                consumer=consumer,
                resource=resource,
                application_id=app_id,
                grant_id=f"GR-BENCH-{n:05d}",
                fields=tuple(CONDITIONAL[:2]),
                masks={"legal_representative": "surname"},
                row_filter='region_code.startsWith("33")' if n % 2 else None,
            )
        )
    return events

"""The sample generator's output for a few seeds, pinned.

Refactoring the generator (its vocabularies moved to data files, its value
functions split) must not change one value: these digests are of the JSON
Lines of 200 records per schema and seed, taken before such a change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from exchange.avro import jsoncodec
from exchange.dev import sample

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"

# One field for (nearly) every kind of value the generator tells apart by name.
_STRING_FIELDS = [
    "id_number",
    "mother_id_number",
    "father_name",
    "birth_date",
    "birth_year",
    "age",
    "grade",
    "gender",
    "gender_code",
    "credit_code",
    "org_code",
    "phone",
    "fax",
    "email",
    "postcode",
    "region_code",
    "city_code",
    "province_code",
    "address",
    "native_place",
    "birth_place",
    "company_name",
    "hospital_name",
    "school_name",
    "bank_name",
    "issuing_authority",
    "registration_authority",
    "tax_bureau",
    "police_office",
    "approved_by",
    "handled_by",
    "surname",
    "given_name",
    "province",
    "city",
    "district",
    "website",
    "ip",
    "plate_no",
    "ethnicity",
    "nationality",
    "occupation",
    "education",
    "marital_status",
    "blood_type",
    "relationship",
    "enterprise_type",
    "business_scope",
    "icd10",
    "cause_of_death",
    "status",
    "remark",
    "title",
    "bank_account",
    "uuid",
    "sha256",
    "md5",
    "issue_date",
    "update_time",
    "certificate_no",
    "licence_no",
    "product_code",
    "username",
    "xm",
    "zzz",
]
_OTHER_FIELDS: list[dict[str, Any]] = [
    {"name": "visit_count", "type": "int"},
    {"name": "birth_weight_grams", "type": "int"},
    {"name": "created_at", "type": "long"},
    {"name": "mobile", "type": "long"},
    {"name": "student_id", "type": "long"},
    {"name": "height", "type": "double"},
    {"name": "rate", "type": "float"},
    {"name": "is_valid", "type": "boolean"},
    {"name": "is_revoked", "type": "boolean"},
    {"name": "photo", "type": "bytes"},
    {"name": "signature", "type": "bytes"},
    {"name": "attachment", "type": ["null", "bytes"]},
    {"name": "tags", "type": {"type": "map", "values": "string"}},
    {
        "name": "salary",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
    },
    {"name": "enrolment_date", "type": {"type": "int", "logicalType": "date"}},
    {"name": "expiry_date", "type": {"type": "int", "logicalType": "date"}},
    {"name": "death_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "xb", "type": "string", "doc": "性别"},
    {"name": "dz", "type": "string", "doc": "住址"},
    {"name": "bh", "type": "string", "doc": "编号，如 ZJ2024-000123"},
]
KITCHEN_SINK: dict[str, Any] = {
    "type": "record",
    "name": "StudentRecord",
    "namespace": "test.pinned",
    "fields": [{"name": n, "type": ["null", "string"]} for n in _STRING_FIELDS] + _OTHER_FIELDS,
}

SCHEMAS = {
    p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(AVRO_DIR.glob("*.avsc"))
}
SCHEMAS["kitchen_sink"] = KITCHEN_SINK

PINNED = {
    (
        "birth_medical_certificate.avsc",
        0,
    ): "73951545f755af6b070e8bd10e34f44306154914b099db761dac66afdcc730bf",
    (
        "birth_medical_certificate.avsc",
        1,
    ): "45730b1a623e43c3d2024100aeb9938d533496f2ef9a0bb67d53fafdd583e2d6",
    (
        "birth_medical_certificate.avsc",
        42,
    ): "cb42febe31afd7d89d77f146cf0e79c8a77541e126a6029bf830cdbbbc712dda",
    (
        "business_licence.avsc",
        0,
    ): "7385404e6a5d9fa9704e2f8e516c239a6e44dd143b61c52646386dcb40098d49",
    (
        "business_licence.avsc",
        1,
    ): "a780f245a76ffd960bdc3c843e6ccdc6092aef44dfe4e28714dd7718f859440c",
    (
        "business_licence.avsc",
        42,
    ): "98e470bad640fa2d9a9535365da6207b7b03ed12fd53ca49417550774ec082cc",
    (
        "death_registration.avsc",
        0,
    ): "55dbbc428cf024d2c30a6d17f216cfb97e5f13f307bc779d698470cc21dd8d03",
    (
        "death_registration.avsc",
        1,
    ): "434a6d101ca7cab97a468bd1b3886e4268c82bc16df6fe87819590dba5d9e2e6",
    (
        "death_registration.avsc",
        42,
    ): "71878eba2b4d8519a43f2a3a667f1cf03fb92ea1f39f2abe6e1b9671eb00ef5f",
    (
        "enterprise_registration.avsc",
        0,
    ): "6500d898dfd80eec0bacf17aedabd15fd8a74607c1497f48205f3259b2bda198",
    (
        "enterprise_registration.avsc",
        1,
    ): "d3dabd5b5aa088bf410efebcb0c635583a1d1f899a22e6ae7065aca569df547d",
    (
        "enterprise_registration.avsc",
        42,
    ): "d86e65ed286959f63fa8953bbaaa97e86efca86599a3f902285cd5c0b2364690",
    (
        "marriage_registration.avsc",
        0,
    ): "c3ed19251784d3968bade0c2277392cc5cb34e8f84cf0e0a5ce55955c6ec9683",
    (
        "marriage_registration.avsc",
        1,
    ): "baf471fc06f0d76ed30b95e94d7ee53c332ecc631c5b796e86f495320623a646",
    (
        "marriage_registration.avsc",
        42,
    ): "c799ab569a27b8647d362c6508b1f99d4998edbb53c4ced0faade86449160c87",
    (
        "minimum_living_allowance.avsc",
        0,
    ): "b081a2a1c05c30400207e3c7b55fd52e5fab0dbd9e26f7072efd5221ab44d3d2",
    (
        "minimum_living_allowance.avsc",
        1,
    ): "a84370aeaf9c6e2698c06f28aa7a1cc9d0b91ec74052c2ff78f929f5f0e0fb8e",
    (
        "minimum_living_allowance.avsc",
        42,
    ): "a9ce97ef544aee57644fbdc17b032e8fe2a3e97ab431aa7e47392561e7bbe3e5",
    (
        "population_basic.avsc",
        0,
    ): "82f467b00a7f4b69e22dac54b80919a8919c35d3e945f85624491d00ccead692",
    (
        "population_basic.avsc",
        1,
    ): "a86b36404896513846864ce24be58192e8b68425e750b8685213e4647dd70c40",
    (
        "population_basic.avsc",
        42,
    ): "c4504c2db8c6b7b4f23f09a470dc464efd796034cf9d094e0e4b33867cf806ae",
    (
        "social_insurance_enrolment.avsc",
        0,
    ): "39c5feb00e15f85e5e89a369a102c0cf168d72a9825069b2374d9c7c0c929c34",
    (
        "social_insurance_enrolment.avsc",
        1,
    ): "dbe681546637f739eecb9df9fcdf857529a00c9a528f76bc7ae1adb176ac53fa",
    (
        "social_insurance_enrolment.avsc",
        42,
    ): "60fb7fd0a390f7f8c80045dc70c9fa32b5b6314119da328c5ede6b4a4adfce05",
    ("kitchen_sink", 0): "9cffab6e4b3434f2b13757eef95e4d3b240d0433cf53d03b8b5ecc8183bf3c57",
    ("kitchen_sink", 1): "eece72a762cf24bef6b7090484ee493caa56e5c6c09dfed15dd8d1c0a589d8ab",
    ("kitchen_sink", 42): "ada9cc99d22ffc04bd09d1c4f9cb730b954d9f20e3d773bf3da9f916e8b76db8",
}


def _digest(schema: dict[str, Any], seed: int) -> str:
    lines = "\n".join(jsoncodec.dumps(r) for r in sample.generate(schema, 200, seed))
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize(("name", "seed"), sorted(PINNED))
def test_output_is_pinned(name: str, seed: int) -> None:
    assert _digest(SCHEMAS[name], seed) == PINNED[name, seed]


def test_every_schema_is_pinned() -> None:
    assert {name for name, _ in PINNED} == set(SCHEMAS)

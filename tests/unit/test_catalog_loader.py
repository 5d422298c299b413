"""The catalog loader: the sample catalog loads, and every rule rejects the whole load.

Each rule test copies the sample catalog in ``schemas/`` to a temporary directory,
breaks exactly one thing, and checks that :func:`load_catalog` raises
:class:`CatalogErrors` whose message names the file, the resource, the field and
the reason.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from exchange.catalog import yamlfile
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import CREDIT_CODE, RESOURCE_CODE, ShareType
from exchange.errors import CatalogError, CatalogErrors

SAMPLE = Path(__file__).resolve().parents[2] / "schemas"

DEPARTMENTS = {"police", "civil_affairs", "health", "hrss", "market"}
RESOURCES = {
    "population_basic",
    "birth_medical_certificate",
    "marriage_registration",
    "death_registration",
    "social_insurance_enrolment",
    "minimum_living_allowance",
    "enterprise_registration",
    "business_licence",
}
LEGAL_BASIS = (
    "《中华人民共和国个人信息保护法》第十三条 (Personal Information Protection Law art. 13)"
)


# ---------------------------------------------------------------- helpers


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A private, writable copy of the sample catalog: ``<tmp>/catalog``."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "catalog"))


def resource_file(catalog_dir: Path, resource_id: str) -> Path:
    return catalog_dir / "resources" / f"{resource_id}.yaml"


def schema_file(catalog_dir: Path, resource_id: str) -> Path:
    return catalog_dir / "avro" / f"{resource_id}.avsc"


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    """Load a YAML file, let ``change`` mutate the data, write it back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def edit_schema(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")


def schema_field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def replace_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should occur once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    """1-based number of the first line of ``path`` that contains ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def rejected(directory: Path) -> CatalogErrors:
    """Load ``directory``, expect the whole load to be rejected, return the errors."""
    with pytest.raises(CatalogErrors) as info:
        load_catalog(directory)
    exc = info.value
    assert exc.errors, "CatalogErrors must carry at least one error"
    assert "nothing was applied" in str(exc)
    assert f"{len(exc.errors)} error(s)" in str(exc)
    return exc


def the_error(exc: CatalogErrors, **facts: Any) -> CatalogError:
    """The one error whose facts include ``facts`` (``field=None``: a resource-level error)."""
    matches = [
        e
        for e in exc.errors
        if all(e.facts.get(k) == v if v is not None else k not in e.facts for k, v in facts.items())
    ]
    assert len(matches) == 1, f"expected one error with {facts}, got:\n{exc}"
    return matches[0]


def only_error(exc: CatalogErrors) -> CatalogError:
    assert len(exc.errors) == 1, f"expected exactly one error, got:\n{exc}"
    return exc.errors[0]


# ---------------------------------------------------------------- the sample catalog


def test_sample_catalog_loads_with_all_departments_and_resources() -> None:
    catalog = load_catalog(SAMPLE)

    assert set(catalog.departments) == DEPARTMENTS
    assert set(catalog.resources) == RESOURCES


def test_sample_departments_have_unique_valid_credit_codes_of_government_bodies() -> None:
    catalog = load_catalog(SAMPLE)
    codes = [d.code for d in catalog.departments.values()]

    assert len(set(codes)) == len(codes)
    for code in codes:
        assert CREDIT_CODE.match(code)
        assert code.startswith("11"), f"{code}: a government organ's code starts with 11"


def test_sample_resource_codes_name_their_providers_code() -> None:
    catalog = load_catalog(SAMPLE)

    for resource in catalog.resources.values():
        match = RESOURCE_CODE.match(resource.code)
        assert match is not None
        assert match["provider"] == catalog.department(resource.provider).code, resource.id


def test_sample_uses_every_share_type_at_resource_level() -> None:
    catalog = load_catalog(SAMPLE)
    used = {r.share.type for r in catalog.resources.values()}

    assert used == set(ShareType)
    assert catalog.resource("business_licence").share.type is ShareType.UNCONDITIONAL
    assert catalog.resource("population_basic").share.type is ShareType.CONDITIONAL
    assert catalog.resource("death_registration").share.type is ShareType.NOT_SHARED


def test_birth_certificate_mixes_all_three_share_types_field_by_field() -> None:
    birth = load_catalog(SAMPLE).resource("birth_medical_certificate")

    unconditional = set(birth.fields_of(ShareType.UNCONDITIONAL))
    conditional = set(birth.fields_of(ShareType.CONDITIONAL))
    not_shared = set(birth.fields_of(ShareType.NOT_SHARED))
    assert {
        "certificate_no",
        "child_name",
        "gender",
        "birth_date",
        "hospital_name",
    } <= unconditional
    assert {
        "mother_id_number",
        "mother_name",
        "father_id_number",
        "father_name",
        "address",
    } <= conditional
    assert not_shared == {"birth_weight_grams", "gestational_weeks"}
    assert all(birth.field(name).legal_basis for name in conditional | not_shared)
    assert "母婴保健法" in str(birth.field("birth_weight_grams").legal_basis)


def test_sample_conditional_resources_state_legal_basis_and_conditions() -> None:
    catalog = load_catalog(SAMPLE)

    for resource in catalog.resources.values():
        if resource.share.type is not ShareType.UNCONDITIONAL:
            assert resource.share.legal_basis, resource.id
        if resource.share.type is ShareType.CONDITIONAL:
            assert resource.share.conditions, resource.id


def test_sample_schemas_are_documented_in_chinese_and_english() -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    latin = re.compile(r"[A-Za-z]{3}")
    catalog = load_catalog(SAMPLE)

    for resource in catalog.resources.values():
        assert cjk.search(resource.schema_["doc"]), resource.id
        assert latin.search(resource.schema_["doc"]), resource.id
        assert len(resource.fields) >= 8, resource.id
        for field in resource.fields:
            assert cjk.search(field.doc), (resource.id, field.name)
            assert latin.search(field.doc), (resource.id, field.name)


def test_sample_keys_are_non_nullable_strings() -> None:
    for resource in load_catalog(SAMPLE).resources.values():
        key = resource.field(resource.key)
        assert key.avro_type == "string", resource.id
        assert not key.nullable, resource.id


def test_sample_catalog_loads_from_a_copy(catalog_dir: Path) -> None:
    """Guards the other tests: the copy they break is valid before they break it."""
    assert set(load_catalog(catalog_dir).resources) == RESOURCES


# ---------------------------------------------------------------- share-list rules


@pytest.mark.parametrize(
    ("resource_id", "share_type"),
    [
        ("population_basic", "conditional (有条件共享)"),
        ("death_registration", "not_shared (不予共享)"),
    ],
)
def test_resource_needing_legal_basis_without_one_is_rejected(
    catalog_dir: Path, resource_id: str, share_type: str
) -> None:
    edit_yaml(resource_file(catalog_dir, resource_id), lambda d: d["share"].pop("legal_basis"))

    exc = rejected(catalog_dir)

    error = the_error(exc, resource=resource_id, field=None)
    assert error.facts["file"] == f"catalog/resources/{resource_id}.yaml"
    assert f"share type {share_type} must cite a legal basis (share.legal_basis)" in str(error)
    assert f"catalog/resources/{resource_id}.yaml:" in str(error)
    assert f"resource {resource_id!r}" in str(error)


def test_field_inherits_no_legal_basis_when_the_resource_has_none(catalog_dir: Path) -> None:
    edit_yaml(
        resource_file(catalog_dir, "population_basic"), lambda d: d["share"].pop("legal_basis")
    )

    exc = rejected(catalog_dir)

    error = the_error(exc, resource="population_basic", field="id_number")
    assert "share type conditional (有条件共享) must cite a legal basis" in str(error)


def test_conditional_resource_without_share_conditions_is_rejected(catalog_dir: Path) -> None:
    edit_yaml(
        resource_file(catalog_dir, "marriage_registration"), lambda d: d["share"].pop("conditions")
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "marriage_registration"
    assert "must state its share conditions (共享条件)" in str(error)


@pytest.mark.parametrize(
    "unclassify",
    [
        pytest.param(lambda fields: fields.pop("mother_name"), id="entry-missing"),
        pytest.param(
            lambda fields: fields.update(mother_name={"legal_basis": LEGAL_BASIS}),
            id="entry-without-share-type",
        ),
    ],
)
def test_field_of_conditional_resource_without_share_type_is_rejected(
    catalog_dir: Path, unclassify: Callable[[dict[str, Any]], None]
) -> None:
    edit_yaml(
        resource_file(catalog_dir, "birth_medical_certificate"), lambda d: unclassify(d["fields"])
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/birth_medical_certificate.yaml"
    assert error.facts["resource"] == "birth_medical_certificate"
    assert error.facts["field"] == "mother_name"
    assert "field 'mother_name': has no share type" in str(error)
    assert "must be classified explicitly under 'fields'" in str(error)


def test_classified_field_missing_from_schema_is_rejected_with_its_line(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "birth_medical_certificate")
    edit_yaml(
        path,
        lambda d: d["fields"].update(
            blood_type={"share_type": "not_shared", "legal_basis": LEGAL_BASIS}
        ),
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["field"] == "blood_type"
    assert error.facts["line"] == line_of(path, "blood_type:")
    assert (
        "resource 'birth_medical_certificate', field 'blood_type': is classified in the "
        "catalog but is not a field of ../avro/birth_medical_certificate.avsc"
    ) in str(error)


def test_unconditional_resource_with_a_conditional_field_is_rejected(catalog_dir: Path) -> None:
    edit_yaml(
        resource_file(catalog_dir, "enterprise_registration"),
        lambda d: d.setdefault("fields", {}).update(
            legal_representative={"share_type": "conditional", "legal_basis": LEGAL_BASIS}
        ),
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "enterprise_registration"
    assert error.facts["field"] == "legal_representative"
    assert "is conditional (有条件共享) but the resource is unconditional" in str(error)
    assert "must be classified conditional" in str(error)


def test_not_shared_resource_with_a_shared_field_is_rejected(catalog_dir: Path) -> None:
    edit_yaml(
        resource_file(catalog_dir, "death_registration"),
        lambda d: d.setdefault("fields", {}).update(death_date={"share_type": "unconditional"}),
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["field"] == "death_date"
    assert "is unconditional but the whole resource is not shared (不予共享)" in str(error)


# ---------------------------------------------------------------- schema rules


def test_schema_file_that_is_not_json_is_rejected(catalog_dir: Path) -> None:
    schema_file(catalog_dir, "business_licence").write_text('{"type": "record",', encoding="utf-8")

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence.yaml"
    assert error.facts["resource"] == "business_licence"
    assert "business_licence.avsc: not valid JSON" in str(error)


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        pytest.param(
            lambda s: schema_field(s, "company_name").update(type="strnig"),
            "not a valid Avro schema",
            id="unknown-type",
        ),
        pytest.param(
            lambda s: schema_field(s, "address").update(default=None),
            "not a valid Avro schema",
            id="default-not-of-the-type",
        ),
        pytest.param(
            lambda s: s.update(type="enum", symbols=["A"]),
            "top-level schema must be an Avro record",
            id="not-a-record",
        ),
    ],
)
def test_schema_that_is_not_valid_avro_is_rejected(
    catalog_dir: Path, breakage: Callable[[dict[str, Any]], None], reason: str
) -> None:
    edit_schema(schema_file(catalog_dir, "business_licence"), breakage)

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert f"business_licence.avsc: {reason}" in str(error)


def test_schema_with_duplicate_field_names_is_rejected(catalog_dir: Path) -> None:
    edit_schema(
        schema_file(catalog_dir, "birth_medical_certificate"),
        lambda s: s["fields"].append(
            {"name": "mother_id_number", "type": "string", "doc": "重复 Duplicate"}
        ),
    )

    error = only_error(rejected(catalog_dir))

    assert "mother_id_number" in str(error)


def test_missing_schema_file_is_rejected(catalog_dir: Path) -> None:
    schema_file(catalog_dir, "business_licence").unlink()

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert "business_licence.avsc: cannot read schema file" in str(error)


@pytest.mark.parametrize("doc", [None, ""], ids=["no-doc", "empty-doc"])
def test_schema_field_without_doc_is_rejected(catalog_dir: Path, doc: str | None) -> None:
    def undocument(schema: dict[str, Any]) -> None:
        field = schema_field(schema, "hospital_name")
        if doc is None:
            del field["doc"]
        else:
            field["doc"] = doc

    edit_schema(schema_file(catalog_dir, "birth_medical_certificate"), undocument)

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "birth_medical_certificate"
    assert error.facts["field"] == "hospital_name"
    assert "has no 'doc' in ../avro/birth_medical_certificate.avsc: describe every field" in str(
        error
    )


def test_key_field_missing_from_schema_is_rejected(catalog_dir: Path) -> None:
    edit_yaml(resource_file(catalog_dir, "business_licence"), lambda d: d.update(key="licence_id"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert "key field 'licence_id' is not a field of the schema" in str(error)


def test_nullable_key_field_is_rejected(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "birth_medical_certificate")
    edit_yaml(path, lambda d: d.update(key="father_id_number"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "birth_medical_certificate"
    assert error.facts["line"] == line_of(path, "key:")
    assert "key field 'father_id_number' must not be nullable" in str(error)


# ---------------------------------------------------------------- cross-file rules


def test_duplicate_resource_id_is_rejected(catalog_dir: Path) -> None:
    copy = catalog_dir / "resources" / "business_licence_copy.yaml"
    shutil.copy(resource_file(catalog_dir, "business_licence"), copy)
    edit_yaml(copy, lambda d: d.update(code="102002/113300000024825338-000003"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence_copy.yaml"
    assert error.facts["resource"] == "business_licence"
    assert "resource id is used twice" in str(error)


def test_duplicate_resource_code_is_rejected(catalog_dir: Path) -> None:
    edit_yaml(
        resource_file(catalog_dir, "enterprise_registration"),
        lambda d: d.update(code="102002/113300000024825338-000002"),
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "enterprise_registration"
    assert (
        "resource code 102002/113300000024825338-000002 is already used by 'business_licence'"
        in (str(error))
    )


def test_duplicate_department_id_is_rejected(catalog_dir: Path) -> None:
    path = catalog_dir / "departments.yaml"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(
            "  - id: police\n"
            "    name_zh: 公安局\n"
            "    name_en: Public Security Bureau\n"
            '    code: "11330100002482100X"\n'
        )

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/departments.yaml"
    assert error.facts["line"] == line_of(path, "name_zh: 公安局") - 1
    assert "department id 'police' is used twice" in str(error)


def test_duplicate_department_code_is_rejected(catalog_dir: Path) -> None:
    path = catalog_dir / "departments.yaml"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(
            "  - id: tax\n"
            "    name_zh: 税务局\n"
            "    name_en: Tax Service\n"
            '    code: "113300000024820150"\n'
        )

    error = only_error(rejected(catalog_dir))

    assert "department code 113300000024820150 is used twice" in str(error)


def test_department_with_malformed_credit_code_is_rejected(catalog_dir: Path) -> None:
    path = catalog_dir / "departments.yaml"
    replace_text(path, '"113300000024825338"', '"11330000002482533"')

    exc = rejected(catalog_dir)

    error = the_error(exc, file="catalog/departments.yaml")
    assert error.facts["line"] == line_of(path, '"11330000002482533"')
    assert error.reason == (
        "code: Value error, '11330000002482533' is not an 18-character unified social credit code"
    )
    # the market department is gone, so its resources now name an unknown provider
    assert "provider 'market' is not a department of the catalog" in str(exc)


def test_resource_with_unknown_provider_is_rejected(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "business_licence")
    edit_yaml(path, lambda d: d.update(provider="tax"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence.yaml"
    assert error.facts["resource"] == "business_licence"
    assert error.facts["line"] == line_of(path, "provider:")
    assert "provider 'tax' is not a department of the catalog" in str(error)


def test_resource_code_naming_another_providers_code_is_rejected(catalog_dir: Path) -> None:
    police = "113300000024820150"
    edit_yaml(
        resource_file(catalog_dir, "business_licence"),
        lambda d: d.update(code=f"102002/{police}-000002"),
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert (
        f"resource code 102002/{police}-000002 names provider code {police}, "
        "but provider 'market' has code 113300000024825338"
    ) in str(error)


def test_malformed_resource_code_is_rejected(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "business_licence")
    edit_yaml(path, lambda d: d.update(code="102002-000002"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert error.facts["line"] == line_of(path, "code:")
    assert "code: Value error, '102002-000002' is not a resource code" in str(error)


# ---------------------------------------------------------------- YAML safety


def test_resource_file_that_is_not_yaml_is_rejected_with_its_line(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "business_licence")
    replace_text(path, "name_en: Business licence", "name_en: Business: licence")

    error = only_error(rejected(catalog_dir))

    line = line_of(path, "name_en:")
    assert error.facts == {"file": "catalog/resources/business_licence.yaml", "line": line}
    assert str(error) == (
        f"catalog/resources/business_licence.yaml:{line}: "
        "not valid YAML: mapping values are not allowed here"
    )


def test_departments_file_that_is_not_yaml_is_rejected_with_its_line(catalog_dir: Path) -> None:
    path = catalog_dir / "departments.yaml"
    replace_text(path, "  - id: hrss\n", "  - id: hrss\n\tname_zh: 人社\n")

    exc = rejected(catalog_dir)

    error = the_error(exc, file="catalog/departments.yaml")
    assert error.facts["line"] == line_of(path, "\tname_zh")
    assert "not valid YAML" in str(error)


def test_file_that_is_not_utf8_is_rejected(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "business_licence")
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence.yaml"
    assert "not UTF-8 text" in str(error)


def test_yaml_alias_is_refused_with_its_line(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "birth_medical_certificate")
    text = path.read_text(encoding="utf-8")
    start = text.index("  gestational_weeks:")
    end = text.index("  issued_at:")
    text = text[:start] + "  gestational_weeks: *medical\n" + text[end:]
    text = text.replace("  birth_weight_grams:\n", "  birth_weight_grams: &medical\n")
    path.write_text(text, encoding="utf-8")

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/birth_medical_certificate.yaml"
    # The anchor comes first, so it is what is refused, at its own line.
    assert (error.facts["line"], error.reason) == (
        line_of(path, "&medical"),
        "YAML anchors (&name) are not allowed",
    )


def test_yaml_bomb_is_refused_quickly(catalog_dir: Path) -> None:
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (catalog_dir / "departments.yaml").write_text("\n".join(bomb) + "\n", encoding="utf-8")

    exc = rejected(catalog_dir)

    error = the_error(exc, file="catalog/departments.yaml")
    assert re.search(r"YAML (aliases|anchors) \(.name\) are not allowed", str(error))


def test_yaml_anchor_without_alias_is_refused(catalog_dir: Path) -> None:
    replace_text(
        resource_file(catalog_dir, "business_licence"),
        "share:\n",
        "share: &share\n",
    )

    error = only_error(rejected(catalog_dir))

    assert "YAML anchors (&name) are not allowed" in str(error)


def test_duplicate_yaml_key_is_refused(catalog_dir: Path) -> None:
    # A second entry for a not-shared field would silently make it unconditional.
    replace_text(
        resource_file(catalog_dir, "birth_medical_certificate"),
        "  issued_at: {share_type: unconditional}\n",
        "  issued_at: {share_type: unconditional}\n"
        "  birth_weight_grams: {share_type: unconditional}\n",
    )

    error = only_error(rejected(catalog_dir))

    assert "birth_weight_grams" in str(error)


def test_file_above_the_size_limit_is_refused(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "business_licence")
    padding = "# " + "x" * yamlfile.MAX_BYTES + "\n"
    path.write_text(path.read_text(encoding="utf-8") + padding, encoding="utf-8")
    size = path.stat().st_size

    error = only_error(rejected(catalog_dir))

    assert error.facts == {"file": "catalog/resources/business_licence.yaml"}
    assert f"file is {size} bytes, more than the {yamlfile.MAX_BYTES} allowed" in str(error)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("id: " + "[" * 100_000 + "]" * 100_000 + "\n", 1, id="flow-lists"),
        pytest.param(
            "id: x\nname_zh: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n", 2, id="flow-maps"
        ),
        pytest.param(
            "id: x\nfields:\n" + "".join(f"{'  ' * i}-\n" for i in range(200)),
            None,
            id="block-lists",
        ),
        pytest.param(
            "id: x\nfields:\n" + "".join(f"{' ' * (i + 1)}a{i}:\n" for i in range(200)),
            None,
            id="block-maps",
        ),
    ],
)
def test_deeply_nested_yaml_is_refused_with_its_line(
    catalog_dir: Path, text: str, line: int | None
) -> None:
    """Nesting thousands deep used to crash the loader with RecursionError."""
    path = resource_file(catalog_dir, "business_licence")
    path.write_text(text, encoding="utf-8")

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence.yaml"
    assert error.reason == f"nested more than {yamlfile.MAX_DEPTH} levels deep"
    expected = line if line is not None else yamlfile.MAX_DEPTH + 2
    assert abs(error.facts["line"] - expected) <= 1, error.facts


def test_departments_file_nested_deeply_is_refused(catalog_dir: Path) -> None:
    (catalog_dir / "departments.yaml").write_text(
        "departments: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8"
    )

    exc = rejected(catalog_dir)

    error = the_error(exc, file="catalog/departments.yaml")
    assert (error.facts["line"], error.reason) == (1, "nested more than 32 levels deep")


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: " + "[" * 30 + "1" + "]" * 30 + "\n", encoding="utf-8")
    data = yamlfile.read(path).data
    for _ in range(31):
        data = data["a"] if isinstance(data, dict) else data[0]
    assert data == 1


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(range(256)) * 4, id="binary"),
        pytest.param(b"\x00" * 100, id="nul-bytes"),
        pytest.param(b"\xef\xbb\xbfid: x\n\xff\xfe\n", id="bom-then-not-utf8"),
    ],
)
def test_file_that_is_not_text_is_refused(catalog_dir: Path, content: bytes) -> None:
    resource_file(catalog_dir, "business_licence").write_bytes(content)

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence.yaml"
    assert error.reason.startswith(("not UTF-8 text", "not valid YAML")), error.reason


def test_yaml_that_is_not_a_mapping_is_refused(catalog_dir: Path) -> None:
    resource_file(catalog_dir, "business_licence").write_text("just a sentence\n", "utf-8")

    error = only_error(rejected(catalog_dir))

    assert error.facts["file"] == "catalog/resources/business_licence.yaml"
    assert "document: Input should be a valid dictionary" in error.reason


def test_yaml_python_tag_is_refused_not_run(catalog_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    resource_file(catalog_dir, "business_licence").write_text(
        f"id: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8"
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["line"] == 1
    assert "could not determine a constructor" in error.reason
    assert not marker.exists()


# ---------------------------------------------------------------- hostile schema files


def test_schema_file_nested_deeply_is_refused(catalog_dir: Path) -> None:
    """JSON thousands deep used to crash the loader with RecursionError."""
    schema_file(catalog_dir, "business_licence").write_text(
        "[" * 100_000 + "]" * 100_000, encoding="utf-8"
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert "business_licence.avsc: nested more than 32 levels deep" in str(error)


def test_schema_with_deeply_nested_types_is_refused(catalog_dir: Path) -> None:
    def nest(schema: dict[str, Any]) -> None:
        avro_type: Any = "string"
        for i in range(40):
            avro_type = {"type": "array", "items": avro_type} if i % 2 else ["null", avro_type]
        schema["fields"].append({"name": "x", "type": avro_type, "doc": "深 deep"})

    edit_schema(schema_file(catalog_dir, "business_licence"), nest)

    error = only_error(rejected(catalog_dir))

    assert "business_licence.avsc: nested more than 32 levels deep" in str(error)


def test_schema_file_above_the_size_limit_is_refused(catalog_dir: Path) -> None:
    path = schema_file(catalog_dir, "business_licence")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.rstrip()[:-1] + " " * 2_000_000 + "}\n", encoding="utf-8")

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert "business_licence.avsc: schema file is over the 1000000 bytes allowed" in str(error)


def test_schema_file_that_is_not_utf8_is_refused(catalog_dir: Path) -> None:
    path = schema_file(catalog_dir, "business_licence")
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert re.search(r"business_licence\.avsc: not UTF-8 text \(byte \d+\)", str(error))


@pytest.mark.parametrize(
    ("field_type", "record"),
    [
        pytest.param(["null", "BusinessLicence"], "gov.exchange.market.BusinessLicence", id="self"),
        pytest.param(
            {"type": "array", "items": "gov.exchange.market.BusinessLicence"},
            "gov.exchange.market.BusinessLicence",
            id="array-of-self",
        ),
        pytest.param(
            [
                "null",
                {
                    "type": "record",
                    "name": "Branch",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "branches", "type": {"type": "map", "values": "Branch"}},
                    ],
                },
            ],
            "gov.exchange.market.Branch",
            id="nested-record-of-itself",
        ),
    ],
)
def test_schema_with_a_recursive_type_is_refused(
    catalog_dir: Path, field_type: Any, record: str
) -> None:
    edit_schema(
        schema_file(catalog_dir, "business_licence"),
        lambda s: s["fields"].append(
            {"name": "parent", "type": field_type, "default": None, "doc": "上级 parent"}
            if isinstance(field_type, list)
            else {"name": "parent", "type": field_type, "doc": "上级 parent"}
        ),
    )

    error = only_error(rejected(catalog_dir))

    assert error.facts["resource"] == "business_licence"
    assert (
        f"business_licence.avsc: record type {record!r} contains itself; recursive types are "
        "not allowed in the catalog"
    ) in str(error)


def test_a_named_type_used_twice_is_not_recursion(catalog_dir: Path) -> None:
    def twice(schema: dict[str, Any]) -> None:
        point = {
            "type": "record",
            "name": "Point",
            "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "double"}],
        }
        schema["fields"].append(
            {"name": "a", "type": ["null", point], "default": None, "doc": "甲 a"}
        )
        schema["fields"].append(
            {"name": "b", "type": ["null", "Point"], "default": None, "doc": "乙 b"}
        )

    edit_schema(schema_file(catalog_dir, "business_licence"), twice)

    assert "b" in load_catalog(catalog_dir).resource("business_licence").field_names()


def test_schema_with_an_unknown_named_type_is_refused(catalog_dir: Path) -> None:
    edit_schema(
        schema_file(catalog_dir, "business_licence"),
        lambda s: s["fields"].append(
            {"name": "x", "type": ["null", "gov.Nowhere"], "default": None, "doc": "未知 x"}
        ),
    )

    error = only_error(rejected(catalog_dir))

    assert "business_licence.avsc: not a valid Avro schema" in str(error)
    assert "gov.Nowhere" in str(error)


# ---------------------------------------------------------------- reporting


def test_several_errors_in_several_files_are_reported_together(catalog_dir: Path) -> None:
    edit_yaml(resource_file(catalog_dir, "business_licence"), lambda d: d.update(provider="tax"))
    edit_yaml(
        resource_file(catalog_dir, "birth_medical_certificate"),
        lambda d: d["fields"].pop("address"),
    )
    schema_file(catalog_dir, "marriage_registration").write_text("not json", encoding="utf-8")
    with (catalog_dir / "departments.yaml").open("a", encoding="utf-8") as fh:
        fh.write(
            '  - {id: Tax, name_zh: 税务局, name_en: Tax Service, code: "113300000024826316"}\n'
        )

    exc = rejected(catalog_dir)

    assert len(exc.errors) == 4, str(exc)
    assert {e.facts["file"] for e in exc.errors} == {
        "catalog/departments.yaml",
        "catalog/resources/business_licence.yaml",
        "catalog/resources/birth_medical_certificate.yaml",
        "catalog/resources/marriage_registration.yaml",
    }
    tax = line_of(catalog_dir / "departments.yaml", "id: Tax")
    assert f"catalog/departments.yaml:{tax}: id: String should match pattern" in str(exc)
    assert "provider 'tax' is not a department" in str(exc)
    assert "field 'address': has no share type" in str(exc)
    assert "marriage_registration.avsc: not valid JSON" in str(exc)


def test_one_broken_resource_rejects_the_whole_catalog(catalog_dir: Path) -> None:
    edit_yaml(resource_file(catalog_dir, "population_basic"), lambda d: d.update(key="nobody"))

    exc = rejected(catalog_dir)

    assert len(exc.errors) == 1
    assert "catalog rejected, 1 error(s), nothing was applied" in str(exc)


def test_errors_carry_structured_facts(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "birth_medical_certificate")
    edit_yaml(
        path,
        lambda d: d["fields"].update(blood_type={"share_type": "conditional"}),
    )

    error = only_error(rejected(catalog_dir))

    assert isinstance(error, CatalogError)
    assert error.facts == {
        "file": "catalog/resources/birth_medical_certificate.yaml",
        "resource": "birth_medical_certificate",
        "field": "blood_type",
        "line": line_of(path, "blood_type:"),
    }
    assert error.reason == (
        "is classified in the catalog but is not a field of ../avro/birth_medical_certificate.avsc"
    )
    assert not error.retriable


def test_missing_catalog_parts_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    exc = rejected(tmp_path / "empty")

    reasons = sorted(e.reason for e in exc.errors)
    assert reasons == ["missing: the catalog needs a departments file", "no resource files found"]


def test_directory_that_does_not_exist_is_rejected(tmp_path: Path) -> None:
    error = only_error(rejected(tmp_path / "nowhere"))

    assert error.reason == "not a directory"


def test_a_resource_sets_its_source_topics_retention(catalog_dir: Path) -> None:
    path = resource_file(catalog_dir, "birth_medical_certificate")
    edit_yaml(path, lambda d: d.update(source_retention_days=30))
    assert (
        load_catalog(catalog_dir).resource("birth_medical_certificate").source_retention_days == 30
    )
    edit_yaml(path, lambda d: d.update(source_retention_days=-2))
    error = only_error(rejected(catalog_dir))
    assert str(error.facts["file"]).endswith("birth_medical_certificate.yaml")
    assert error.facts["line"] == line_of(path, "source_retention_days")
    assert "source_retention_days" in str(error)

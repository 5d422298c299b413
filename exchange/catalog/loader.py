"""Load a catalog directory and check every rule of the shared list.

Layout of a catalog directory::

    departments.yaml          # list of departments
    services.yaml             # service identities signing audit chain heads (optional)
    resources/*.yaml          # one information resource per file
    avro/*.avsc               # Avro schemas the resources refer to
    calendar/<year>.yaml      # official holidays and make-up days of a year (optional;
                              # see exchange.catalog.calendar)

All errors of all files are collected and reported together; any error
rejects the whole catalog, so nothing is ever partly applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exchange.avro import schema as avro
from exchange.catalog.calendar import load_years
from exchange.catalog.model import (
    RESOURCE_CODE,
    Catalog,
    Department,
    FieldInfo,
    Resource,
    ResourceSpec,
    ServiceIdentity,
    ShareType,
)
from exchange.catalog.workflow import load_workflow
from exchange.catalog.yamlfile import Document, YamlProblem, read
from exchange.errors import CatalogError, CatalogErrors, SchemaError

NEEDS_LEGAL_BASIS = (ShareType.CONDITIONAL, ShareType.NOT_SHARED)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def _pydantic_errors(
    exc: ValidationError, doc: Document, name: str, base: tuple[Any, ...], resource: str | None
) -> list[CatalogError]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field = None
        if len(loc) >= 2 and loc[0] == "fields":
            field = str(loc[1])
        if loc:
            message = f"{'.'.join(str(p) for p in loc)}: {err['msg']}"
        elif base:  # a rule of the item as a whole (a model validator), which names it
            message = err["msg"].removeprefix("Value error, ")
        else:
            message = f"document: {err['msg']}"
        out.append(
            CatalogError(
                message,
                file=name,
                line=doc.line_of(base + loc),
                resource=resource,
                field=field,
            )
        )
    return out


def _read(path: Path, name: str, errors: list[CatalogError]) -> Document | None:
    try:
        return read(path)
    except YamlProblem as exc:
        errors.append(CatalogError(exc.message, file=name, line=exc.line))
        return None


def load_catalog(directory: str | Path) -> Catalog:
    """Read and validate a catalog directory; raise :class:`CatalogErrors` on any problem."""
    root = Path(directory)
    errors: list[CatalogError] = []
    if not root.is_dir():
        raise CatalogErrors([CatalogError("not a directory", file=str(root))])

    departments, signatures_required = _load_departments(root, errors)
    resources: dict[str, Resource] = {}
    codes: dict[str, str] = {}
    files = sorted((root / "resources").glob("*.yaml")) + sorted((root / "resources").glob("*.yml"))
    if not files:
        errors.append(CatalogError("no resource files found", file=_rel(root / "resources", root)))
    for path in files:
        name = _rel(path, root)
        resource = _load_resource(path, name, departments, errors)
        if resource is None:
            continue
        if resource.id in resources:
            errors.append(
                CatalogError("resource id is used twice", file=name, resource=resource.id)
            )
            continue
        if resource.code in codes:
            errors.append(
                CatalogError(
                    f"resource code {resource.code} is already used by {codes[resource.code]!r}",
                    file=name,
                    resource=resource.id,
                )
            )
            continue
        codes[resource.code] = resource.id
        resources[resource.id] = resource
    calendar = load_years(root, lambda path: _rel(path, root), errors)
    services = _load_services(root, departments, errors)
    workflow = load_workflow(root, errors)
    if errors:
        raise CatalogErrors(errors)
    try:
        return Catalog(
            departments=departments,
            resources=resources,
            signatures_required=signatures_required,
            calendar=calendar,
            services=services,
            workflow=workflow,
        )
    except ValidationError as exc:  # a rule over the whole catalog (signatures_required)
        raise CatalogErrors(
            [
                CatalogError(str(e["msg"]).removeprefix("Value error, "), file="departments.yaml")
                for e in exc.errors()
            ]
        ) from None


def _load_departments(root: Path, errors: list[CatalogError]) -> tuple[dict[str, Department], bool]:
    """The departments, and whether every one must sign (``signatures_required``)."""
    path = root / "departments.yaml"
    name = _rel(path, root)
    departments: dict[str, Department] = {}
    if not path.exists():
        errors.append(CatalogError("missing: the catalog needs a departments file", file=name))
        return departments, False
    doc = _read(path, name, errors)
    if doc is None:
        return departments, False
    items = doc.data.get("departments") if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        errors.append(CatalogError("expected a mapping with a 'departments' list", file=name))
        return departments, False
    required = doc.data.get("signatures_required", False)
    if not isinstance(required, bool):
        errors.append(
            CatalogError(
                f"signatures_required must be true or false, not {required!r}",
                file=name,
                line=doc.line_of(("signatures_required",)),
            )
        )
        required = False
    codes: set[str] = set()
    for i, item in enumerate(items):
        try:
            dept = Department.model_validate(item)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc, doc, name, ("departments", i), None))
            continue
        line = doc.line_of(("departments", i))
        if dept.id in departments:
            errors.append(
                CatalogError(f"department id {dept.id!r} is used twice", file=name, line=line)
            )
        elif dept.code in codes:
            errors.append(
                CatalogError(f"department code {dept.code} is used twice", file=name, line=line)
            )
        else:
            departments[dept.id] = dept
            codes.add(dept.code)
    return departments, required


def _load_services(
    root: Path, departments: dict[str, Department], errors: list[CatalogError]
) -> dict[str, ServiceIdentity]:
    """The service identities of ``services.yaml`` (none if the file is absent)."""
    path = root / "services.yaml"
    services: dict[str, ServiceIdentity] = {}
    if not path.exists():
        return services
    name = _rel(path, root)
    doc = _read(path, name, errors)
    if doc is None:
        return services
    items = doc.data.get("services") if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        errors.append(CatalogError("expected a mapping with a 'services' list", file=name))
        return services
    for i, item in enumerate(items):
        try:
            service = ServiceIdentity.model_validate(item)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc, doc, name, ("services", i), None))
            continue
        line = doc.line_of(("services", i))
        if service.id in services:
            errors.append(
                CatalogError(f"service id {service.id!r} is used twice", file=name, line=line)
            )
        elif service.id in departments:
            errors.append(
                CatalogError(
                    f"service id {service.id!r} is also a department's id", file=name, line=line
                )
            )
        else:
            services[service.id] = service
    return services


def _load_resource(
    path: Path, name: str, departments: dict[str, Department], errors: list[CatalogError]
) -> Resource | None:
    doc = _read(path, name, errors)
    if doc is None:
        return None
    rid = doc.data.get("id") if isinstance(doc.data, dict) else None
    rid = rid if isinstance(rid, str) else None
    try:
        spec = ResourceSpec.model_validate(doc.data)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(exc, doc, name, (), rid))
        return None
    before = len(errors)
    problem = _Problems(errors, doc, name, spec.id)
    _check_provider(spec, departments, problem)
    _check_share(spec, problem)
    schema = _load_schema(path, spec, problem)
    if schema is None:
        return None
    schema_fields = _schema_fields(spec, schema, problem)
    infos = _field_infos(spec, schema_fields, problem)
    if len(errors) > before:
        return None
    return Resource(
        id=spec.id,
        code=spec.code,
        name_zh=spec.name_zh,
        name_en=spec.name_en,
        provider=spec.provider,
        summary=spec.summary,
        key=spec.key,
        update_cycle=spec.update_cycle,
        share=spec.share,
        open_attribute=spec.open_attribute,
        schema_=schema,
        schema_id=avro.schema_id(schema),
        fields=tuple(infos),
        source_retention_days=spec.source_retention_days,
        resync_interval_hours=spec.resync_interval_hours,
        on_platform=spec.on_platform,
    )


class _Problems:
    """Records the problems of one resource file; each names file, line, resource and field."""

    def __init__(self, errors: list[CatalogError], doc: Document, name: str, resource: str) -> None:
        self._errors, self._doc, self._name, self._resource = errors, doc, name, resource

    def __call__(
        self, message: str, *, field: str | None = None, loc: tuple[Any, ...] = ()
    ) -> None:
        self._errors.append(
            CatalogError(
                message,
                file=self._name,
                line=self._doc.line_of(loc),
                resource=self._resource,
                field=field,
            )
        )


def _check_provider(
    spec: ResourceSpec, departments: dict[str, Department], problem: _Problems
) -> None:
    """The provider is a department of the catalog, and the resource code names its code."""
    provider = departments.get(spec.provider)
    if provider is None:
        problem(f"provider {spec.provider!r} is not a department of the catalog", loc=("provider",))
        return
    match = RESOURCE_CODE.match(spec.code)
    if match and match["provider"] != provider.code:
        problem(
            f"resource code {spec.code} names provider code {match['provider']}, "
            f"but provider {provider.id!r} has code {provider.code}",
            loc=("code",),
        )


def _check_share(spec: ResourceSpec, problem: _Problems) -> None:
    """The resource's share type cites a legal basis and states conditions where it must."""
    share = spec.share
    if share.type in NEEDS_LEGAL_BASIS and not share.legal_basis:
        problem(
            f"share type {share.type.value} ({share.type.zh}) must cite a legal basis "
            "(share.legal_basis)",
            loc=("share",),
        )
    if share.type is ShareType.CONDITIONAL and not share.conditions:
        problem("a conditional resource must state its share conditions (共享条件)", loc=("share",))


def _load_schema(path: Path, spec: ResourceSpec, problem: _Problems) -> dict[str, Any] | None:
    """The resource's Avro schema, from a file inside the catalog directory."""
    schema_path = (path.parent / spec.schema_file).resolve()
    catalog_root = path.parent.parent.resolve()
    if Path(spec.schema_file).is_absolute() or not schema_path.is_relative_to(catalog_root):
        problem(
            f"schema file {spec.schema_file!r} is outside the catalog directory", loc=("schema",)
        )
        return None
    try:
        return avro.load_file(str(schema_path))
    except SchemaError as exc:
        problem(str(exc), loc=("schema",))
        return None


def _schema_fields(
    spec: ResourceSpec, schema: dict[str, Any], problem: _Problems
) -> dict[str, Any]:
    """The schema's fields by name: each once, every classified one there, a usable key."""
    schema_fields: dict[str, Any] = {}
    for fdef in schema["fields"]:
        if fdef["name"] in schema_fields:
            problem(f"appears twice in {spec.schema_file}", field=fdef["name"])
        schema_fields[fdef["name"]] = fdef
    for fname in spec.fields:
        if fname not in schema_fields:
            problem(
                f"is classified in the catalog but is not a field of {spec.schema_file}",
                field=fname,
                loc=("fields", fname),
            )
    if spec.key not in schema_fields:
        problem(f"key field {spec.key!r} is not a field of the schema", loc=("key",))
    elif avro.field_is_nullable(schema_fields[spec.key]["type"]):
        problem(f"key field {spec.key!r} must not be nullable", loc=("key",))
    elif avro.non_null_type(schema_fields[spec.key]["type"]) not in ("string", "long", "int"):
        problem(f"key field {spec.key!r} must be a string, int or long", loc=("key",))
    return schema_fields


def _field_infos(
    spec: ResourceSpec, schema_fields: dict[str, Any], problem: _Problems
) -> list[FieldInfo]:
    """Each field's share type, legal basis and conditions: its own, or the resource's."""
    share = spec.share
    infos = []
    for fname, fdef in schema_fields.items():
        policy = spec.fields.get(fname)
        explicit = policy.share_type if policy else None
        if explicit is None and share.type is ShareType.CONDITIONAL:
            problem(
                "has no share type: a conditional (有条件共享) resource may mix share types, "
                "so each field (信息项) must be classified explicitly under 'fields'",
                field=fname,
                loc=("fields",),
            )
            continue
        ftype = explicit or share.type
        if share.type is ShareType.UNCONDITIONAL and ftype is not ShareType.UNCONDITIONAL:
            problem(
                f"is {ftype.value} ({ftype.zh}) but the resource is unconditional; a resource "
                "that is only partly shared must be classified conditional (有条件共享)",
                field=fname,
                loc=("fields", fname),
            )
        if share.type is ShareType.NOT_SHARED and ftype is not ShareType.NOT_SHARED:
            problem(
                f"is {ftype.value} but the whole resource is not shared (不予共享)",
                field=fname,
                loc=("fields", fname),
            )
        basis = (policy.legal_basis if policy else None) or share.legal_basis
        if ftype in NEEDS_LEGAL_BASIS and not basis:
            problem(
                f"share type {ftype.value} ({ftype.zh}) must cite a legal basis",
                field=fname,
                loc=("fields", fname),
            )
        if not fdef.get("doc"):
            problem(f"has no 'doc' in {spec.schema_file}: describe every field", field=fname)
        infos.append(
            FieldInfo(
                name=fname,
                share_type=ftype,
                legal_basis=basis,
                conditions=(policy.conditions if policy else None) or share.conditions,
                doc=str(fdef.get("doc", "")),
                avro_type=fdef["type"],
                nullable=avro.field_is_nullable(fdef["type"]),
            )
        )
    return infos

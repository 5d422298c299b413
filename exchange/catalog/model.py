"""The resource catalog (政务信息资源目录) and its shared list (共享清单).

Pydantic models for departments and information resources, plus the
:class:`Catalog` that the rest of the bus looks things up in. Loading and
cross-file rules live in :mod:`exchange.catalog.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from exchange.catalog.workflow import Workflow
from exchange.errors import UnknownResource
from exchange.workdays import YearCalendar

SLUG = r"^[a-z][a-z0-9_]{1,39}$"
#: Resource code as the catalog guide structures it: classification (类/项/目, digits),
#: provider code (the provider's unified social credit code) and a sequence number.
RESOURCE_CODE = re.compile(
    r"^(?P<classification>\d{3,9})/(?P<provider>[0-9A-Z]{18})-(?P<seq>\d{6})$"
)
CREDIT_CODE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


class ShareType(StrEnum):
    """共享类型 share type, per the 2016 interim measures (国发〔2016〕51号)."""

    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NOT_SHARED = "not_shared"  # 不予共享

    @property
    def zh(self) -> str:
        return {
            "unconditional": "无条件共享",
            "conditional": "有条件共享",
            "not_shared": "不予共享",
        }[self.value]


class UpdateCycle(StrEnum):
    """更新周期 update cycle."""

    REAL_TIME = "real-time"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"
    ON_CHANGE = "on-change"


class ShareMethod(StrEnum):
    """共享方式 share method."""

    SUBSCRIPTION = "subscription"  # 订阅推送 (this bus)
    INTERFACE = "interface"  # 接口调用
    FILE = "file"  # 文件下载


class OpenAttribute(StrEnum):
    """开放属性 open attribute: may the resource be opened to the public."""

    OPEN = "open"  # 无条件开放
    CONDITIONAL_OPEN = "conditional_open"  # 有条件开放
    NOT_OPEN = "not_open"  # 不予开放


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Department(_Strict):
    """A government department (政务部门) taking part in the exchange."""

    id: str = Field(pattern=SLUG, description="slug used in topic names, e.g. 'police'")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    code: str = Field(description="统一社会信用代码 unified social credit code (18 characters)")
    public_key: str | None = Field(
        default=None,
        description="Ed25519 public key (base64, 32 bytes); when set, its commands must be signed",
    )
    catalog_admin: bool = Field(
        default=False,
        description="目录管理员 catalog administrator: once the catalog in force names one, "
        "only an administrator's signed load replaces it (needs public_key)",
    )

    data_authority: bool = Field(
        default=False,
        description="政务数据共享主管部门 the data-sharing authority (usually the big-data "
        "bureau): reviews applications for compliance and decides escalated disputes "
        "(needs public_key; at most one department)",
    )

    @model_validator(mode="after")
    def _admin_has_key(self) -> Department:
        if self.data_authority and self.public_key is None:
            raise ValueError(
                f"department {self.id!r} is the data-sharing authority (data_authority: true) "
                "but has no public_key to verify its signed decisions with: add one "
                "('exchange keys generate') or remove data_authority"
            )
        if self.catalog_admin and self.public_key is None:
            raise ValueError(
                f"department {self.id!r} is a catalog administrator (catalog_admin: true) but "
                "has no public_key to verify its signed catalog loads with: add one "
                "('exchange keys generate') or remove catalog_admin"
            )
        return self

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, v: str | None) -> str | None:
        from exchange.catalog.signing import check_public_key

        return None if v is None else check_public_key(v)

    @field_validator("code")
    @classmethod
    def _credit_code(cls, v: str) -> str:
        if not CREDIT_CODE.match(v):
            raise ValueError(f"{v!r} is not an 18-character unified social credit code")
        return v


SERVICE_ID = r"^[a-z][a-z0-9-]{1,62}$"


class ServiceIdentity(_Strict):
    """服务身份 A service of the bus that writes the access log (``gov-router-1``, a gateway,
    an archiver): the Ed25519 key it signs its audit chain heads with (services.yaml)."""

    id: str = Field(pattern=SERVICE_ID, description="e.g. 'gov-router-1'")
    role: str = Field(
        min_length=1, description="what it is: router, gateway, archiver, session, ..."
    )
    public_key: str = Field(description="Ed25519 public key (base64, 32 bytes)")

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, v: str) -> str:
        from exchange.catalog.signing import check_public_key

        return check_public_key(v)


class FieldPolicy(_Strict):
    """The shared-list entry of one field (信息项); unset values inherit the resource's."""

    share_type: ShareType | None = None
    legal_basis: str | None = None
    conditions: str | None = None


class ShareSpec(_Strict):
    """Resource-level sharing: type, conditions (共享条件), method, legal basis."""

    type: ShareType
    conditions: str | None = None
    method: ShareMethod = ShareMethod.SUBSCRIPTION
    legal_basis: str | None = None


class ResourceSpec(_Strict):
    """A resource entry as written in a catalog YAML file."""

    id: str = Field(pattern=SLUG)
    code: str
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    provider: str
    summary: str = Field(min_length=1)
    schema_file: str = Field(alias="schema")
    key: str = Field(description="field whose value is the Kafka key (ordering per key)")
    update_cycle: UpdateCycle
    share: ShareSpec
    open_attribute: OpenAttribute
    fields: dict[str, FieldPolicy] = Field(default_factory=dict)
    source_retention_days: int | None = Field(
        default=None,
        ge=-1,
        description="how long gov.src.<provider>.<id> keeps records: days, -1 for ever; "
        "unset: the platform's EXCHANGE_SOURCE_RETENTION_MS (7 days by default)",
    )
    resync_interval_hours: int | None = Field(
        default=None,
        ge=1,
        description="a consumer may ask for its full view again ('exchange resync') at "
        "most once in this many hours; unset: whenever it asks",
    )
    on_platform: bool = Field(
        default=True,
        description="已上线: the data is on the platform already; false: the provider answers "
        "an application within workflow.yaml's time_limits.answer_unpublished",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not RESOURCE_CODE.match(v):
            raise ValueError(
                f"{v!r} is not a resource code 'CLASSIFICATION/PROVIDERCODE-SEQUENCE' "
                "(e.g. '201003/12330000470051726F-000001')"
            )
        return v


class FieldInfo(_Strict):
    """One field of a resource with its effective (inherited or explicit) share type."""

    name: str
    share_type: ShareType
    legal_basis: str | None
    conditions: str | None
    doc: str
    avro_type: Any
    nullable: bool


class Resource(_Strict):
    """A validated information resource (信息资源) with its schema and shared-list entries."""

    id: str
    code: str
    name_zh: str
    name_en: str
    provider: str
    summary: str
    key: str
    update_cycle: UpdateCycle
    share: ShareSpec
    open_attribute: OpenAttribute
    schema_: dict[str, Any] = Field(alias="schema")
    schema_id: int
    fields: tuple[FieldInfo, ...]
    #: retention of the source topic in days (-1: for ever); None: the platform's default
    source_retention_days: int | None = None
    #: at most one 'exchange resync' per consumer in this many hours (None: no limit)
    resync_interval_hours: int | None = None
    #: 已上线: on the platform already (False: the longer answer limit applies)
    on_platform: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def field(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def fields_of(self, share_type: ShareType) -> list[str]:
        return [f.name for f in self.fields if f.share_type is share_type]


class Catalog(BaseModel):
    """A whole, validated catalog: departments and resources, looked up by id."""

    model_config = ConfigDict(frozen=True)

    departments: dict[str, Department]
    resources: dict[str, Resource]
    #: every schema ever registered for a resource, by schema id (older versions stay decodable)
    schema_history: dict[str, list[int]] = Field(default_factory=dict)
    #: every department must register a public key and sign every command (签名必需);
    #: set by ``signatures_required: true`` at the top of departments.yaml
    signatures_required: bool = False
    #: the official holiday calendar's years from calendar/<year>.yaml (法定节假日 and 调休);
    #: they win over the chinesecalendar package (see :mod:`exchange.catalog.calendar`)
    calendar: tuple[YearCalendar, ...] = ()
    #: service identities (服务身份) that sign the heads of their audit chains (services.yaml)
    services: dict[str, ServiceIdentity] = Field(default_factory=dict)
    #: compliance review and time limits of the sharing workflow (workflow.yaml)
    workflow: Workflow = Field(default_factory=Workflow)

    @model_validator(mode="after")
    def _one_authority(self) -> Catalog:
        marked = sorted(d for d, dept in self.departments.items() if dept.data_authority)
        if len(marked) > 1:
            raise ValueError(
                "only one department may be the data-sharing authority (data_authority: true); "
                f"marked: {', '.join(marked)}"
            )
        if self.workflow.compliance_review and not marked:
            raise ValueError(
                "workflow.yaml sets compliance_review: true, but no department is the "
                "data-sharing authority (data_authority: true in departments.yaml) to review"
            )
        return self

    def authority(self) -> Department | None:
        """The data-sharing authority (政务数据共享主管部门), if the catalog names one."""
        for dept in self.departments.values():
            if dept.data_authority:
                return dept
        return None

    @model_validator(mode="after")
    def _keys_when_required(self) -> Catalog:
        if self.signatures_required:
            unkeyed = sorted(d for d, dept in self.departments.items() if dept.public_key is None)
            if unkeyed:
                raise ValueError(
                    "signatures_required is set, but these departments have no public_key: "
                    + ", ".join(unkeyed)
                )
            if not self.admins():
                raise ValueError(
                    "signatures_required is set, but no department is a catalog_admin: "
                    "catalog loads would go unsigned"
                )
        return self

    def department(self, dept_id: str) -> Department:
        try:
            return self.departments[dept_id]
        except KeyError:
            known = ", ".join(sorted(self.departments)) or "none"
            raise UnknownResource(
                f"unknown department {dept_id!r} (catalog has: {known})", department=dept_id
            ) from None

    def with_keys(
        self,
        public_keys: Mapping[str, str],
        *,
        admins: Collection[str] = (),
        signatures_required: bool | None = None,
    ) -> Catalog:
        """This catalog with ``public_keys`` (department -> base64 Ed25519 key) registered,
        ``admins`` as its catalog administrators (and no other department one), and
        ``signatures_required`` if given; validated again, as if written in departments.yaml.
        """
        departments = {}
        for d, dept in self.departments.items():
            data = dept.model_dump()
            if d in public_keys:
                data["public_key"] = public_keys[d]
            data["catalog_admin"] = d in admins
            departments[d] = Department.model_validate(data)
        return Catalog(
            departments=departments,
            resources=dict(self.resources),
            schema_history=dict(self.schema_history),
            signatures_required=(
                self.signatures_required if signatures_required is None else signatures_required
            ),
            calendar=self.calendar,
            services=dict(self.services),
            workflow=self.workflow,
        )

    def head_keys(self) -> dict[str, str]:
        """Who may sign audit chain heads: service id -> its public key (base64)."""
        return {s.id: s.public_key for s in self.services.values()}

    def admins(self) -> dict[str, Department]:
        """The catalog administrators (目录管理员): who may load the next catalog."""
        return {d.id: d for d in self.departments.values() if d.catalog_admin}

    def resource(self, resource_id: str) -> Resource:
        try:
            return self.resources[resource_id]
        except KeyError:
            known = ", ".join(sorted(self.resources)) or "none"
            raise UnknownResource(
                f"unknown resource {resource_id!r} (catalog has: {known})", resource=resource_id
            ) from None

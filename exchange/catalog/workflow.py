"""The sharing workflow's settings in the catalog: ``workflow.yaml`` (optional).

The 2025 regulation on government data sharing (《政务数据共享条例》) puts the
data-sharing authority (政务数据共享主管部门, usually the big-data bureau) in
the workflow; each province sets its time limits. A catalog directory may
carry::

    compliance_review: true        # 符合性审查: every application goes to the authority first
    time_limits:                   # working days on the official calendar
      review: 2                    # the authority's compliance review
      answer: 5                    # the provider's answer
      answer_unpublished: 10       # ... when the resource is not yet on the platform
      negotiation: 10              # the two departments' negotiation after a contest
      decision: 10                 # the authority's decision on an escalated dispute

Without the file: no review, and the national rule of the 2016 interim
measures (an answer within 10 working days). The authority itself is the
department marked ``data_authority: true`` in ``departments.yaml``.

Time limits are taken by each application when it is made: a change of the
catalog applies to applications made after the load, never to those already
running (:class:`exchange.sharing.records.Application` keeps its own).
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exchange.catalog.yamlfile import YamlProblem, read
from exchange.errors import CatalogError

WORKFLOW_FILE = "workflow.yaml"
MAX_WORKING_DAYS = 366


def _days(default: int, what: str) -> int:
    return Field(default=default, ge=1, le=MAX_WORKING_DAYS, description=what)


class TimeLimits(BaseModel):
    """时限 Working days each stage of an application may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review: int = _days(2, "符合性审查 the authority's compliance review")
    answer: int = _days(10, "the provider's answer (答复)")
    answer_unpublished: int | None = Field(
        default=None,
        ge=1,
        le=MAX_WORKING_DAYS,
        description="the provider's answer when the resource is not yet on the platform "
        "(on_platform: false); unset: the same as answer",
    )
    negotiation: int = _days(10, "协商 negotiation between consumer and provider after a contest")
    decision: int = _days(10, "the authority's decision (协调决定) on an escalated dispute")

    def for_case(self, *, on_platform: bool) -> dict[str, int]:
        """The limits one application takes, by stage (review, answer, negotiation, decision)."""
        return dict(_for_case(self, on_platform))


@functools.lru_cache(maxsize=64)
def _for_case(limits: TimeLimits, on_platform: bool) -> tuple[tuple[str, int], ...]:
    """:meth:`TimeLimits.for_case`, computed once per settings (a replay makes thousands)."""
    answer = limits.answer if on_platform else (limits.answer_unpublished or limits.answer)
    return (
        ("review", limits.review),
        ("answer", answer),
        ("negotiation", limits.negotiation),
        ("decision", limits.decision),
    )


class Workflow(BaseModel):
    """共享流程 How applications travel: compliance review on or off, and the time limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compliance_review: bool = Field(
        default=False,
        description="符合性审查: every new application goes to the data authority first",
    )
    time_limits: TimeLimits = Field(default_factory=TimeLimits)


def load_workflow(root: Path, errors: list[CatalogError]) -> Workflow:
    """``workflow.yaml`` of the catalog directory ``root`` (the defaults if absent).

    Problems are appended to ``errors``, each naming file, line and setting.
    """
    path = root / WORKFLOW_FILE
    if not path.exists():
        return Workflow()
    try:
        doc = read(path)
    except YamlProblem as exc:
        errors.append(CatalogError(exc.message, file=WORKFLOW_FILE, line=exc.line))
        return Workflow()
    if not isinstance(doc.data, dict):
        errors.append(
            CatalogError(
                "expected a mapping with compliance_review and time_limits", file=WORKFLOW_FILE
            )
        )
        return Workflow()
    try:
        return Workflow.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "document"
            errors.append(
                CatalogError(f"{where}: {err['msg']}", file=WORKFLOW_FILE, line=doc.line_of(loc))
            )
        return Workflow()

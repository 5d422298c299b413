"""The stages of an application and its path through them (申请 → 审查 → 答复 → 争议 → 决定).

An :class:`~exchange.sharing.records.Application` keeps every step taken on
it (:class:`Step`: who, when, what, why) in order; the stage it is in and
the time each stage took follow from them (:func:`windows`). Four stages
run against a time limit in working days on the official calendar
(:mod:`exchange.workdays`), each limit taken from the catalog when the
application was made (:mod:`exchange.catalog.workflow`):

======================  ================================  ========================
stage                   who must act                      limit (workflow.yaml)
======================  ================================  ========================
``review`` 符合性审查    the data-sharing authority         ``review``
``answer`` 答复          the provider                       ``answer`` (or
                                                           ``answer_unpublished``)
``negotiation`` 协商     consumer and provider              ``negotiation``
``escalated`` 协调       the authority decides              ``decision``
======================  ================================  ========================

The other stages are outcomes: ``returned`` (退回 by the review),
``authorised`` (unconditional data, authorised at review), ``approved``,
``rejected``, ``upheld`` (the authority upheld a refusal) and ``ordered``
(the authority ordered sharing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from exchange import workdays


class Stage(StrEnum):
    REVIEW = "review"
    RETURNED = "returned"
    AUTHORISED = "authorised"
    ANSWER = "answer"
    APPROVED = "approved"
    REJECTED = "rejected"
    NEGOTIATION = "negotiation"
    ESCALATED = "escalated"
    UPHELD = "upheld"
    ORDERED = "ordered"

    @property
    def zh(self) -> str:
        return _ZH[self]

    @property
    def limit_key(self) -> str | None:
        """The time limit (workflow.yaml ``time_limits``) this stage runs against, if any."""
        return _LIMIT_OF.get(self)


_ZH = {
    Stage.REVIEW: "符合性审查中",
    Stage.RETURNED: "已退回",
    Stage.AUTHORISED: "已授权",
    Stage.ANSWER: "待答复",
    Stage.APPROVED: "已同意",
    Stage.REJECTED: "已拒绝",
    Stage.NEGOTIATION: "协商中",
    Stage.ESCALATED: "待主管部门协调",
    Stage.UPHELD: "维持拒绝",
    Stage.ORDERED: "责令共享",
}
_LIMIT_OF = {
    Stage.REVIEW: "review",
    Stage.ANSWER: "answer",
    Stage.NEGOTIATION: "negotiation",
    Stage.ESCALATED: "decision",
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_STAGES = {s.value: s for s in Stage}
#: the time limits of an application made before limits were settings (the 2016 rule)
DEFAULT_LIMITS = {"review": 2, "answer": workdays.ANSWER_WITHIN_WORKING_DAYS}
DEFAULT_LIMITS.update(negotiation=10, decision=10)


class Step(NamedTuple):
    """One step on an application's path: ``name`` (applied, reviewed, answered,
    contested, negotiated, escalated, decided, appealed, revoked), by ``actor`` at
    ``at``; ``outcome`` (passed, returned, approved, rejected, upheld, ordered, or
    empty), ``reason`` as given, and ``to``, the stage the application is in after it.

    A plain tuple of JSON values (the time in epoch milliseconds, the stage by name),
    so that a session revives the paths of thousands of applications from a grant
    book snapshot at the cost of a tuple each (:meth:`from_plain`).
    """

    name: str
    actor: str
    at_ms: int
    stage: str
    outcome: str = ""
    reason: str | None = None

    @classmethod
    def of(
        cls,
        name: str,
        actor: str,
        at: dt.datetime,
        to: Stage,
        outcome: str = "",
        reason: str | None = None,
    ) -> Step:
        ms = (at - _EPOCH) // dt.timedelta(milliseconds=1)
        return cls(name, actor, ms, to.value, outcome, reason)

    @property
    def at(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(milliseconds=self.at_ms)

    @property
    def to(self) -> Stage:
        return _STAGES[self.stage]

    def to_plain(self) -> list[Any]:
        """Compact JSON form (grant book snapshots)."""
        return list(self)

    @classmethod
    def from_plain(cls, row: list[Any]) -> Step:
        """A step of :meth:`to_plain`; a row that is not one raises KeyError or TypeError."""
        step = cls._make(row)
        _STAGES[step.stage]
        return step

    def to_json(self) -> dict[str, Any]:
        from exchange import beijing

        return {
            "step": self.name,
            "actor": self.actor,
            "at": beijing.iso(self.at),
            "outcome": self.outcome,
            "reason": self.reason or "",
            "stage": self.stage,
        }


@dataclass(frozen=True)
class Window:
    """The time an application spent in one stage: from ``start`` to ``end`` (None: now)."""

    stage: Stage
    start: dt.datetime
    end: dt.datetime | None
    limit: int | None

    @property
    def due(self) -> dt.date | None:
        if self.limit is None:
            return None
        return workdays.due_date(self.start, self.limit)

    def overdue(self, at: dt.datetime) -> bool:
        """Past its due date: still open after it, or closed after it."""
        due = self.due
        return due is not None and workdays.china_date(self.end or at) > due

    def due_facts(self) -> dict[str, Any]:
        """Audit details of this stage's due date (and ``calendar_missing``, if so)."""
        if self.limit is None:
            return {}
        return {
            "stage": self.stage.value,
            "time_limit_working_days": self.limit,
            **workdays.due_facts(self.start, self.limit),
        }


def limit_of(stage: Stage, limits: dict[str, int]) -> int | None:
    """The working days ``stage`` may take under ``limits`` (None: not a timed stage)."""
    key = stage.limit_key
    return None if key is None else limits.get(key, DEFAULT_LIMITS[key])


def windows(steps: tuple[Step, ...], limits: dict[str, int]) -> list[Window]:
    """The stages an application went through, in order, with their time limits."""

    def limit(stage: Stage) -> int | None:
        return limit_of(stage, limits)

    out: list[Window] = []
    stage, start = steps[0].to, steps[0].at
    for step in steps[1:]:
        if step.to is stage:
            continue  # a negotiation message, an appeal: same stage
        out.append(Window(stage, start, step.at, limit(stage)))
        stage, start = step.to, step.at
    out.append(Window(stage, start, None, limit(stage)))
    return out


def last_window(steps: tuple[Step, ...], limits: dict[str, int]) -> Window:
    """The stage under way: the last of :func:`windows`, without building the others."""
    stage, start = steps[-1].to, steps[-1].at
    for step in reversed(steps[:-1]):  # earlier steps into the same stage extend it back
        if step.to is not stage:
            break
        start = step.at
    return Window(stage, start, None, limit_of(stage, limits))

"""The report of one file import (导入报告): rows read, published, normalised, refused and why.

Written beside the imported file as ``<file>.import-report.json`` when a
run ends (published, or refused whole), and summarised in an audit entry
(``FILE_IMPORTED`` or ``FILE_IMPORT_REFUSED``). A refused file lists its
first :data:`MAX_LISTED` refused rows with place, column, field and reason,
and counts all of them, so a department can fix every row in one go.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.tabular import Place
from exchange import beijing
from exchange.audit.entry import Action, Decision, Draft, detail_map

MAX_LISTED = 1000
SUFFIX = ".import-report.json"


@dataclass
class Refusal:
    """One row that does not fit, and why."""

    place: Place
    reason: str
    column: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.place.facts()
        if self.column is not None:
            out["column"] = self.column
        if self.field is not None:
            out["field"] = self.field
        out["reason"] = self.reason
        return out


@dataclass
class ImportReport:
    """What one import of one file did."""

    connector: str
    department: str
    resource: str
    file: Path
    format: str
    encoding: str | None = None
    sheet: str | None = None
    digest: str = ""
    rows_read: int = 0
    published: int = 0
    refused_rows: int = 0
    refused: list[Refusal] = field(default_factory=list)
    #: a problem with the file as a whole (not text, no header, a record too large ...)
    failure: str | None = None
    normalised: Counter[str] = field(default_factory=Counter)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    def refuse(self, refusal: Refusal) -> None:
        self.refused_rows += 1
        if len(self.refused) < MAX_LISTED:
            self.refused.append(refusal)

    @property
    def accepted(self) -> bool:
        return self.refused_rows == 0 and self.failure is None

    @property
    def path(self) -> Path:
        return self.file.with_name(self.file.name + SUFFIX)

    def outcome(self) -> str:
        if self.accepted:
            return "published"
        return "refused"

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "department": self.department,
            "resource": self.resource,
            "file": str(self.file),
            "sha256": self.digest,
            "format": self.format,
            "encoding": self.encoding,
            "sheet": self.sheet,
            "outcome": self.outcome(),
            "rows_read": self.rows_read,
            "published": self.published,
            "refused_rows": self.refused_rows,
            "normalised": dict(sorted(self.normalised.items())),
            "failure": self.failure,
            "refused": [r.as_dict() for r in self.refused],
            "refused_listed": len(self.refused),
            "started_at": beijing.iso(self.started_at),
            "finished_at": beijing.iso(self.finished_at) if self.finished_at else None,
        }

    def summary(self) -> str:
        """One line for the operator."""
        norm = ", ".join(f"{k} {v}" for k, v in sorted(self.normalised.items())) or "none"
        text = (
            f"{self.file.name}: read {self.rows_read} rows, published {self.published}, "
            f"refused {self.refused_rows}, normalised: {norm}"
        )
        return text + (f"; {self.failure}" if self.failure else "")

    def write(self) -> Path:
        """Write the report beside the file (atomically: a reader never sees half of it)."""
        self.finished_at = dt.datetime.now(dt.UTC)
        path = self.path
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
        return path

    def audit_draft(self) -> Draft:
        """The audit entry of this import: counts and place, never a value of the file."""
        first = self.failure or (self.refused[0].reason if self.refused else None)
        where = self.refused[0].as_dict() if self.refused and not self.failure else {}
        where.pop("reason", None)
        return Draft(
            Action.FILE_IMPORTED if self.accepted else Action.FILE_IMPORT_REFUSED,
            actor=self.department,
            decision=Decision.PUBLISHED if self.accepted else Decision.DENIED,
            resource=self.resource,
            provider=self.department,
            reason=None if self.accepted else first,
            details=detail_map(
                connector=self.connector,
                file=str(self.file),
                sha256=self.digest,
                format=self.format,
                encoding=self.encoding,
                sheet=self.sheet,
                rows_read=self.rows_read,
                published=self.published,
                refused_rows=self.refused_rows,
                normalised=dict(self.normalised) or None,
                first_refused=where or None,
                report=str(self.path),
            ),
        )

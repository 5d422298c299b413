"""One word for a refusal, and a documented action vocabulary (issue 23 item 5)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from exchange.audit.archive_url import open_archive
from exchange.audit.entry import REFUSALS, Action, AuditEntry, Decision, Draft, chain
from exchange.audit.query import Filter, parse_decision, select
from exchange.audit.verify import Position
from exchange.catalog.model import Catalog
from exchange.control.catalog_store import new_snapshot, refusal_draft
from exchange.errors import ExchangeError

README = Path(__file__).resolve().parents[2] / "README.md"
T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)


def refusals() -> list[AuditEntry]:
    """A refused subscription, a refused command, one written before 'denied' was the only
    word, and an approval (no refusal)."""
    drafts = [
        Draft(Action.SUBSCRIPTION_DENIED, actor="hrss", decision=Decision.DENIED, consumer="hrss"),
        Draft(Action.COMMAND_REFUSED, actor="police", decision=Decision.DENIED),
        Draft(Action.COMMAND_REFUSED, actor="nobody", decision="refused"),  # an old entry
        Draft(Action.APPLICATION_APPROVED, actor="health", decision=Decision.APPROVED),
    ]
    drafts = [
        Draft(**{**d.__dict__, "at": T0 + dt.timedelta(minutes=i)}) for i, d in enumerate(drafts)
    ]
    return chain(drafts, writer="w")


def test_decision_denied_finds_every_refusal_whatever_the_action(tmp_path: Path) -> None:
    entries = refusals()
    items = [(Position(0, i), e) for i, e in enumerate(entries)]
    found = select(items, Filter(decision="denied"))
    assert {e.actor for e in found} == {"hrss", "police", "nobody"}
    with open_archive(str(tmp_path / "audit.sqlite")) as db:  # and so does an archive
        db.store("gov.audit", items, {0: len(items)})
        assert [e for _, e in db.query(Filter(decision="denied"))] == found


def test_decisions_are_a_vocabulary() -> None:
    assert parse_decision("DENIED") == "denied"
    assert parse_decision("refused") == "denied"  # the old word finds the same entries
    assert parse_decision(None) is None
    with pytest.raises(ExchangeError, match="unknown decision 'nope'"):
        parse_decision("nope")
    assert {"denied", "refused"} == REFUSALS


def test_a_refused_catalog_load_is_audited_as_denied(sample_catalog: Catalog) -> None:
    draft = refusal_draft(new_snapshot(None, sample_catalog, actor="nobody"), "no")
    assert (draft.action, draft.decision) == (Action.COMMAND_REFUSED, Decision.DENIED)


def test_the_readme_documents_every_action() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Audit actions", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE)
    assert documented == [a.value for a in Action]

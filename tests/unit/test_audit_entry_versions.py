"""Every action vocabulary the audit entry schema has had stays readable.

Each new action changes the entry schema (its enum of actions): entries written by
earlier releases, with the earlier schemas, must still decode, each action read as the
same action.
"""

from __future__ import annotations

from typing import Any

import pytest

from exchange.audit import entry
from exchange.audit.entry import AUDIT_CODEC, Action, AuditEntry, Decision, Draft
from exchange.avro import schema as avro
from exchange.avro import wire

OLDER = [
    entry.AUDIT_ENTRY_V1,
    entry.AUDIT_ENTRY_V2,
    entry.AUDIT_ENTRY_V3,
    entry.AUDIT_ENTRY_V4,
    entry.AUDIT_ENTRY_V5,
    entry.AUDIT_ENTRY_V6,
    entry.AUDIT_ENTRY_V7,
    entry.AUDIT_ENTRY_V8,
]


def _symbols(schema: dict[str, Any]) -> list[str]:
    (action,) = [f for f in schema["fields"] if f["name"] == "action"]
    return list(action["type"]["symbols"])


@pytest.mark.parametrize("older", OLDER, ids=["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"])
def test_entries_of_an_earlier_vocabulary_decode_as_the_same_action(older: dict[str, Any]) -> None:
    sealed = AuditEntry.seal(
        Draft(action=Action.COMMAND_REFUSED, actor="police", decision=Decision.DENIED),
        writer="w",
        seq=0,
        prev_hash="",
        instance="host",
    )
    for symbol in _symbols(older):
        record = {**sealed.to_avro(), "action": symbol}
        value = wire.frame(avro.schema_id(older), wire.encode(avro.parse(older), record))
        assert AuditEntry.decode(value).action == Action(symbol)


def test_each_version_adds_actions_and_the_current_one_has_them_all() -> None:
    sizes = [len(_symbols(s)) for s in [*OLDER, AUDIT_CODEC.schema]]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == len(sizes)
    assert _symbols(AUDIT_CODEC.schema) == [a.value for a in Action]

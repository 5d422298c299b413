"""The rules of deletions without a broker: keys, approvals' rule at rest, sink batches, events.

* a deletion's key is checked like a record's key field, and the tombstone has no value;
* an approval carries its rule for data at rest (``delete`` by default, ``keep-frozen``),
  an unknown rule or one set by the applicant is refused, and grant events written
  before the rule existed still decode;
* one sink batch folds records, deletions and retractions to the table they leave;
* a record with no value reads as a :class:`Deletion` or a :class:`Retraction`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, replace
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from test_grants import T0, accept, applied, approval, refuse

from connectors.file_export import _Kept
from connectors.sink_batch import TECHNICAL, SinkBatch
from exchange.avro.control_records import ControlCodec
from exchange.bus.connection import Connection
from exchange.bus.envelope import (
    AT_REST,
    DELETION,
    RECORD_ID,
    RETRACTION,
    RETRACTION_KEY_PREFIX,
    RETRACTION_REASON,
)
from exchange.catalog.model import Catalog
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Deletion, Retraction, _tombstone
from exchange.control.state import GRANT_CODEC
from exchange.errors import PermissionDenied, RecordInvalid
from exchange.router.backfill_state import (
    PROGRESS_CODEC,
    PROGRESS_V1,
    Progress,
    encode_progress,
)
from exchange.router.deletions import reaches
from exchange.router.membership import Membership
from exchange.router.membership_rebuild import Held, held_rule
from exchange.router.retractions import Retractions
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import GRANT_EVENT_V2, AtRest, EventKind, GrantEvent

BMC = "birth_medical_certificate"  # provider health, key certificate_no (a string)


def publisher(catalog: Catalog, department: str = "health") -> Publisher:
    return Publisher(Connection(bootstrap="127.0.0.1:9"), catalog, department)


# --- deletions by the provider --------------------------------------------------------------


def test_a_deletion_is_a_tombstone_of_the_key_with_an_id_of_its_own(
    sample_catalog: Catalog,
) -> None:
    pub = publisher(sample_catalog)
    one = pub.prepare_deletion(BMC, "Z330106202600001")
    again = pub.prepare_deletion(BMC, "Z330106202600001")
    assert (one.topic, one.key, one.value) == (
        "gov.src.health.birth_medical_certificate",
        b"Z330106202600001",
        None,
    )
    assert dict(one.headers)[DELETION] == b"deleted"
    assert one.record_id != again.record_id  # deleted, written again, deleted again: two ids


@pytest.mark.parametrize(
    ("key", "problem"),
    [("", "an empty key"), ("  ", "an empty key"), (None, "not a value"), ("x" * 1001, "at most")],
)
def test_a_key_its_key_field_cannot_hold_is_refused_naming_the_field(
    sample_catalog: Catalog, key: Any, problem: str
) -> None:
    with pytest.raises(RecordInvalid) as refused:
        publisher(sample_catalog).prepare_deletion(BMC, key, index=3)
    message = str(refused.value)
    assert problem in message
    assert message.startswith(
        "record 3: resource 'birth_medical_certificate': field 'certificate_no'"
    )


def test_only_the_provider_deletes(sample_catalog: Catalog) -> None:
    with pytest.raises(PermissionDenied, match="its provider is 'health'"):
        publisher(sample_catalog, "police").prepare_deletion(BMC, "Z1")


# --- who receives a deletion --------------------------------------------------------------


def test_a_row_filtered_view_gets_a_deletion_only_of_a_key_it_holds_or_cannot_read() -> None:
    plain = SimpleNamespace(key_hash=None, row_filter=object(), view=None)
    hashed = SimpleNamespace(key_hash=lambda k: k, row_filter=object(), view=None)
    members = {b"A"}
    assert reaches(plain, None, b"anything")  # type: ignore[arg-type]  # no row filter
    assert reaches(plain, members, b"A")  # type: ignore[arg-type]
    assert members == set()  # forgotten once deleted
    assert not reaches(plain, members, b"B")  # type: ignore[arg-type]  # never its key
    assert reaches(hashed, members, b"B")  # type: ignore[arg-type]  # a hash reveals nothing


def test_membership_is_kept_per_view_and_partition_with_a_row_filter_only() -> None:
    m = Membership()
    view = SimpleNamespace(
        row_filter=object(), consumer="police", view=SimpleNamespace(resource=BMC)
    )
    unfiltered = SimpleNamespace(
        row_filter=None, consumer="hrss", view=SimpleNamespace(resource=BMC)
    )
    assert not m.known(BMC, "police", 0)
    keys = m.of(view, 0)  # type: ignore[arg-type]
    assert keys is not None
    keys.add(b"A")
    assert m.known(BMC, "police", 0)
    assert m.of(view, 0) == {b"A"}  # type: ignore[arg-type]
    assert m.of(view, 1) == set()  # type: ignore[arg-type]  # another partition's keys
    assert m.of(unfiltered, 0) is None  # type: ignore[arg-type]
    m.forget(BMC, "police")
    assert not m.known(BMC, "police", 0)
    assert m.size() == 0


def test_membership_forgets_partitions_given_up_and_views_that_lost_their_filter() -> None:
    m = Membership()
    m.establish(BMC, "police", 0, {b"A"})
    m.establish(BMC, "police", 1, {b"B"})
    m.establish(BMC, "market", 0, {b"C"})
    m.keep_partitions({(BMC, 0)})  # partition 1 went to another router
    assert not m.known(BMC, "police", 1)
    assert m.known(BMC, "police", 0)
    m.keep_views({(BMC, "police")})  # market's view has no row filter any more
    assert not m.known(BMC, "market", 0)
    assert m.size() == 1


# --- the approval's rule for data at rest ----------------------------------------------------


def test_an_approval_carries_its_rule_at_rest_delete_by_default(sample_catalog: Catalog) -> None:
    book = GrantBook()
    first = approval(book, applied(book, sample_catalog), grant_id="GR-1")
    accept(book, sample_catalog, first)
    assert book.grants["GR-1"].at_rest is AtRest.DELETE
    frozen = approval(book, applied(book, sample_catalog), grant_id="GR-2", at_rest="keep-frozen")
    accept(book, sample_catalog, frozen)
    assert book.grants["GR-2"].at_rest is AtRest.KEEP_FROZEN


def test_an_unknown_rule_at_rest_or_one_set_by_the_applicant_is_refused(
    sample_catalog: Catalog,
) -> None:
    book = GrantBook()
    app = applied(book, sample_catalog)
    reason = refuse(book, sample_catalog, approval(book, app, grant_id="GR-x", at_rest="shred"))
    assert "'shred' is unknown" in reason
    asked = GrantEvent(
        kind=EventKind.APPLIED,
        actor="police",
        consumer="police",
        resource=BMC,
        application_id="APP-own",
        fields=("mother_name",),
        purpose="p",
        at=T0,
        at_rest="keep-frozen",
    )
    assert "set with the grant" in refuse(book, sample_catalog, asked)


def test_grant_events_written_before_the_rule_at_rest_still_decode() -> None:
    ev = GrantEvent(kind=EventKind.REVOKED, actor="health", consumer="police", resource=BMC)
    fields = {k: v for k, v in ev.to_avro().items() if k != "at_rest"}
    old = ControlCodec(GRANT_EVENT_V2)
    decoded = GrantEvent.from_avro(GRANT_CODEC.decode(old.encode(fields)))
    assert decoded == ev
    assert "at_rest" not in ev.signed_fields()  # signatures made before it still verify


# --- one sink batch ---------------------------------------------------------------------------


def row(key: str, partition: int, value: str) -> tuple[Any, ...]:
    return (key, f"rid-{key}-{value}", T0, partition, None, None, value)


def test_a_sink_batch_keeps_each_keys_last_word() -> None:
    batch = SinkBatch()
    batch.upsert(row("A", 0, "v1"))
    batch.delete("A")
    batch.delete("B")
    batch.upsert(row("B", 1, "v2"))
    assert batch.rows == {"A": None, "B": row("B", 1, "v2")}


def test_a_retraction_deletes_or_freezes_the_rows_of_its_partition_only() -> None:
    batch = SinkBatch()
    batch.upsert(row("A", 0, "a"))
    batch.upsert(row("B", 1, "b"))
    batch.retract(0, "delete", "GR-1", T0)
    batch.upsert(row("C", 0, "c"))  # after the retraction on partition 0: kept
    assert set(batch.rows) == {"B", "C"}
    at = T0 + dt.timedelta(seconds=1)
    batch.retract(1, "keep-frozen", "GR-1", at)
    grant, when = TECHNICAL.index("gov_retracted_grant"), TECHNICAL.index("gov_retracted_at")
    b = batch.rows["B"]
    assert b is not None
    assert (b[grant], b[when], b[-1]) == ("GR-1", at, "b")  # frozen and marked, value kept
    c = batch.rows["C"]
    assert c is not None
    assert c[grant] is None  # partition 0: not touched by partition 1's retraction
    assert batch.retractions == [("delete", 0), ("freeze", 1, "GR-1", at)]


# --- what a reader makes of a record without a value ----------------------------------------


def tombstone(key: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="gov.dlv.police.birth_medical_certificate",
        partition=2,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=None,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=-1,
        headers=headers,
    )


def test_a_reader_sees_a_deletion_or_a_retraction_never_a_none_value() -> None:
    gone = _tombstone(
        tombstone(b"Z1", [(RECORD_ID, b"r1"), (DELETION, b"left-view")]),
        {
            RECORD_ID: "r1",
            DELETION: "left-view",
        },
    )
    assert isinstance(gone, Deletion)
    assert (gone.key, gone.reason, gone.partition, gone.offset) == ("Z1", "left-view", 2, 7)
    headers = {RETRACTION: "GR-9", AT_REST: "keep-frozen", RETRACTION_REASON: "expired"}
    ended = _tombstone(tombstone(RETRACTION_KEY_PREFIX + b"GR-9", []), headers)
    assert isinstance(ended, Retraction)
    assert (ended.grant_id, ended.at_rest, ended.reason) == ("GR-9", "keep-frozen", "expired")


# --- which ended grants are retracted ---------------------------------------------------------


def compiled(consumer: str, grant_id: str | None) -> Any:
    view = SimpleNamespace(grant_id=grant_id, purpose="p", resource=BMC)
    return SimpleNamespace(consumer=consumer, view=view)


def test_a_revoked_or_expired_grant_is_retracted_a_superseded_one_is_not(
    sample_catalog: Catalog,
) -> None:
    book = GrantBook()
    for gid, rule in (("GR-r", "keep-frozen"), ("GR-s", None)):
        app = applied(book, sample_catalog, consumer="police")
        accept(book, sample_catalog, approval(book, app, grant_id=gid, at_rest=rule))
    # GR-s superseded GR-r (a new approval for police); now revoke GR-s too
    revoked = GrantEvent(
        kind=EventKind.REVOKED,
        actor="health",
        consumer="police",
        resource=BMC,
        grant_id="GR-s",
        reason="使用完毕",
        at=T0 + dt.timedelta(hours=2),
    )
    accept(book, sample_catalog, revoked)
    drafts: list[Any] = []
    r = Retractions(drafts.append)
    before = {BMC: [compiled("police", "GR-s"), compiled("hrss", None)]}
    after = {BMC: [compiled("police", None), compiled("hrss", None)]}
    now = T0 + dt.timedelta(hours=3)
    (found,) = r.noticed(before, after, book, now, lambda _res: "health")
    assert (found.grant_id, found.consumer, found.at_rest, found.reason) == (
        "GR-s",
        "police",
        "delete",
        "revoked",
    )
    superseded = {BMC: [compiled("police", "GR-r")]}
    assert r.noticed(superseded, after, book, now, lambda _res: "health") == []
    assert r.noticed(before, before, book, now, lambda _res: "health") == []  # still in force


def test_a_file_export_leaves_out_what_was_deleted_later_on_the_topic() -> None:
    kept = _Kept()

    def rec(key: bytes | None, partition: int) -> Any:
        return SimpleNamespace(key=key, partition=partition)

    kept.add(b"A", 0, {"n": "a"})
    kept.add(b"B", 1, {"n": "b"})
    kept.add(b"C", 0, {"n": "c"})
    kept.forget(rec(b"A", 0), {DELETION: b"deleted"})
    assert kept.written() == [{"n": "b"}, {"n": "c"}]
    kept.forget(rec(b"x", 1), {RETRACTION: b"GR-1", AT_REST: b"keep-frozen"})
    assert kept.written() == [{"n": "b"}, {"n": "c"}]  # kept frozen: still exported
    kept.forget(rec(b"x", 0), {RETRACTION: b"GR-1", AT_REST: b"delete"})
    kept.add(b"D", 0, {"n": "d"})  # after the retraction: kept
    assert kept.written() == [{"n": "b"}, {"n": "d"}]


def test_exchange_consume_shows_deletions_and_retractions_by_name() -> None:
    from exchange.cli.data import _as_json, _as_line

    gone = Deletion("r1", "Z1", "left-view", "gov.dlv.police.bmc", 1, 5, {})
    ended = Retraction("r2", "GR-9", "delete", "revoked", "gov.dlv.police.bmc", 0, 9, {})
    assert _as_line(gone) == "gov.dlv.police.bmc[1]@5 key=Z1 DELETED (left-view)"
    assert "GRANT GR-9 RETRACTED (revoked)" in _as_line(ended)
    assert json.loads(_as_json(gone)) == {"gov_deletion": {"key": "Z1", "reason": "left-view"}}
    assert '"gov_retraction"' in _as_json(ended)
    assert json.loads(_as_json(ended))["gov_retraction"]["at_rest"] == "delete"


# --- which keys a filtered view held before the router took the partition -------------------


def _progress(**changes: Any) -> Progress:
    base = Progress(
        consumer="police",
        resource=BMC,
        partition=0,
        job="BF-1",
        shape="s",
        fields="mother_name",
        grant_id="GR-1",
        row_filter='region_code.startsWith("33")',
        trigger="grant",
        cutover=100,
        through=99,
        delivered=50,
        total=50,
        state="done",
        reason=None,
        request="",
        at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        instance="r1",
    )
    return replace(base, **changes)


def test_the_keys_held_follow_the_filter_the_consumers_copy_was_built_under() -> None:
    view = SimpleNamespace(consumer="police", view=SimpleNamespace(row_filter="x > 1"))
    done = held_rule(_progress(), view, backfill=True)  # type: ignore[arg-type]
    assert done == Held("police", 'region_code.startsWith("33")')
    # a view that gained a row filter: its copy was built without one, every key is held
    unfiltered = held_rule(_progress(row_filter=None), view, backfill=True)  # type: ignore[arg-type]
    assert unfiltered == Held("police", None)
    # nothing backfilled yet (a new view), or the view ended (retracted): nothing held
    assert held_rule(None, view, backfill=True) is None  # type: ignore[arg-type]
    assert held_rule(_progress(state="ended"), view, backfill=True) is None  # type: ignore[arg-type]
    # without backfills there is no progress: the view's own filter
    assert held_rule(None, view, backfill=False) == Held("police", "x > 1")  # type: ignore[arg-type]


def test_a_first_backfill_cut_short_holds_only_what_it_delivered() -> None:
    view = SimpleNamespace(consumer="police", view=SimpleNamespace(row_filter="x > 1"))
    running = _progress(state="sending", through=40, cutover=100)
    held = held_rule(running, view, backfill=True)  # type: ignore[arg-type]
    assert held is not None
    assert held.holds(40, True, False)  # delivered by the backfill
    assert not held.holds(41, True, True)  # not delivered yet: the resumed backfill adds it
    assert held.holds(100, True, False)  # routed live from the cut-over on
    assert not held.holds(100, False, True)
    resync = held_rule(replace(running, trigger="resync"), view, backfill=True)  # type: ignore[arg-type]
    assert resync is not None
    assert resync.holds(41, True, False)  # the same view again: held before it


def test_a_narrowing_cut_short_holds_what_the_filter_before_it_held_where_it_had_not_reached() -> (
    None
):
    view = SimpleNamespace(consumer="police", view=SimpleNamespace(row_filter="x > 1"))
    narrowing = _progress(
        state="sending",
        trigger="widened",
        through=40,
        cutover=100,
        row_filter='region_code.startsWith("3301")',
        narrowed_from='region_code.startsWith("33")',
    )
    held = held_rule(narrowing, view, backfill=True)  # type: ignore[arg-type]
    assert held == Held(
        "police",
        'region_code.startsWith("3301")',
        (40, 100),
        'region_code.startsWith("33")',
    )
    assert held.holds(41, False, True)  # not reached: held under the filter before
    assert not held.holds(41, True, False)
    assert not held.holds(40, False, True)  # reached: deleted if the new filter rejects it
    assert held.holds(100, True, False)  # live under the new filter


def test_progress_records_before_narrowed_from_existed_are_still_read() -> None:
    old = ControlCodec(PROGRESS_V1).encode(
        {k: v for k, v in asdict(_progress()).items() if k != "narrowed_from"}
    )
    assert Progress(**PROGRESS_CODEC.decode(old)) == _progress()
    new = _progress(narrowed_from="true")
    assert Progress(**PROGRESS_CODEC.decode(encode_progress(new))) == new

"""Fetch sessions: what each request names, and when the next one starts over."""

from __future__ import annotations

from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11

from exchange.bus.fetch_sessions import OPEN_EPOCH, Session


def fetch(**offsets: int) -> FetchRequest:
    """A full fetch request of ``topic_partition=offset`` (e.g. ``a_0=5``)."""
    topics: dict[str, list[tuple[int, int, int]]] = {}
    for name, offset in offsets.items():
        topic, partition = name.rsplit("_", 1)
        topics.setdefault(topic, []).append((int(partition), offset, 1024))
    return FetchRequest(500, 1, 1 << 20, 0, list(topics.items()))


def sent(request: FetchRequest) -> tuple[int, int, dict[str, list[int]], dict[str, list[int]]]:
    """(session id, epoch, {topic: [partition, offset, ...]}, forgotten) as built for v11."""
    struct = request.build(FetchRequest_v11)
    parts = {t: [x for p in ps for x in (p[0], p[2])] for t, ps in struct.topics}
    return struct.session_id, struct.session_epoch, parts, dict(struct.forgotten_topics_data)


def test_the_first_request_names_every_partition_and_opens_a_session() -> None:
    s = Session()
    r = s.request(fetch(a_0=5, a_1=7, b_0=0))
    assert sent(r) == (0, OPEN_EPOCH, {"a": [0, 5, 1, 7], "b": [0, 0]}, {})
    s.answered(r, session_id=42)
    assert (s.id, s.epoch) == (42, 1)


def test_later_requests_name_only_moved_added_and_dropped_partitions() -> None:
    s = Session()
    s.answered(s.request(fetch(a_0=5, a_1=7, b_0=0)), session_id=42)
    r = s.request(fetch(a_0=5, a_1=9, c_0=3))  # a_1 moved, c_0 added, b_0 paused or revoked
    assert sent(r) == (42, 1, {"a": [1, 9], "c": [0, 3]}, {"b": [0]})
    s.answered(r, session_id=42)
    r = s.request(fetch(a_0=5, a_1=9, c_0=3))  # nothing moved: an empty increment
    assert sent(r) == (42, 2, {}, {})
    # the request keeps the full list: the fetcher matches the answer against it
    assert sorted(p for _, ps in r.topics for p in ps) == [(0, 3, 1024), (0, 5, 1024), (1, 9, 1024)]


def test_a_seek_back_to_the_offset_last_sent_needs_no_mention() -> None:
    """The broker fetches an unnamed partition from the offset last sent for it."""
    s = Session()
    s.answered(s.request(fetch(a_0=100)), session_id=7)
    # records 100-150 came back; a rewind to 100 before reading them changes nothing sent
    assert sent(s.request(fetch(a_0=100)))[2] == {}
    assert sent(s.request(fetch(a_0=151)))[2] == {"a": [0, 151]}


def test_a_refused_or_absent_session_starts_over_with_a_full_request() -> None:
    s = Session()
    s.answered(s.request(fetch(a_0=1)), session_id=9)
    s.reset()  # the broker lost it (FETCH_SESSION_ID_NOT_FOUND)
    assert sent(s.request(fetch(a_0=1))) == (0, OPEN_EPOCH, {"a": [0, 1]}, {})
    s.answered(s.request(fetch(a_0=1)), session_id=0)  # a broker that opens none
    assert (s.id, s.epoch) == (0, OPEN_EPOCH)
    s.answered(s.request(fetch(a_0=1)), session_id=9)
    s.answered(s.request(fetch(a_0=1)), session_id=10)  # answered in another session
    assert (s.id, s.epoch, s.held) == (0, OPEN_EPOCH, {})


def test_a_broker_without_sessions_gets_every_partition() -> None:
    s = Session()
    s.answered(s.request(fetch(a_0=1, a_1=2)), session_id=5)
    r = s.request(fetch(a_0=1, a_1=3))
    struct = r.build(FetchRequest_v4)  # before v7: no session fields
    assert [p[0] for _, ps in struct.topics for p in ps] == [0, 1]
    s.answered(r, session_id=5)
    assert s.epoch == OPEN_EPOCH


def test_the_epoch_wraps_to_one() -> None:
    s = Session(id=3, epoch=2**31 - 1, held={("a", 0): (1, 1024)})
    s.answered(s.request(fetch(a_0=1)), session_id=3)
    assert s.epoch == 1

"""Incremental fetch sessions (Kafka's KIP-227) for aiokafka's consumers.

A plain fetch request names every partition the consumer reads, and the broker's answer
lists every one of them, records or not. The router reads every source partition (71
resources of 3 partitions in the bench: 213), and aiokafka encodes and decodes each of
those lists in Python for every fetch, hundreds of times a second under load: on one
Kafka node, a consumer reading 210 idle partitions besides its 3 busy ones saw its
records' p50 latency go from 4.7 to 10.7 ms and its p99 from 10 to 22 ms at 2,000
records/s, and a profile of it spent a quarter of its time encoding fetch requests and
decoding their answers (measured with a throwaway script; see the README).

Kafka's answer, which the Java consumer uses and aiokafka does not, is a fetch session:
the first request names every partition and opens a session at the broker; each later
one names only the partitions whose fetch position changed, and those no longer read
(``forgotten_topics_data``), and the broker answers with only the partitions that have
records or news (a moved high watermark, an error). :class:`FetchSessions` adds that to
an aiokafka consumer without changing what the consumer sees: it stands in front of the
fetcher's client, turns each full fetch request into its session's increment, and keeps
the request's full partition list for the fetcher's own bookkeeping.

If the broker loses or refuses the session (``FETCH_SESSION_ID_NOT_FOUND``,
``INVALID_FETCH_SESSION_EPOCH``: a broker restarted, a request cancelled in flight) the
same fetch is sent again at once as a full request that opens a new session; a broker
that opens none (session id 0, or a protocol version before 7) gets full requests, as
before. Used on Apache Kafka (:func:`exchange.bus.kafka.consumer`); the embedded broker
keeps plain fetches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.protocol.fetch import FetchRequest

log = logging.getLogger(__name__)

#: a request that opens a session (with session id 0) or a full one within it
OPEN_EPOCH = 0
MAX_EPOCH = 2**31 - 1
SESSION_ID_NOT_FOUND = 70
INVALID_SESSION_EPOCH = 71
FIRST_SESSION_VERSION = 7

Partition = tuple[str, int]
Topics = list[tuple[str, list[tuple[int, int, int]]]]


class SessionFetchRequest(FetchRequest):  # type: ignore[misc]  # aiokafka is untyped
    """A fetch of ``full``'s partitions that sends only what the session lacks.

    :attr:`topics` stays the full list (the fetcher matches the answer's partitions
    against it); :meth:`build` puts the increment, the session id and epoch and the
    partitions to forget in the request sent.
    """

    def __init__(
        self,
        full: FetchRequest,
        session_id: int,
        epoch: int,
        send: Topics,
        forget: list[tuple[str, list[int]]],
        wanted: dict[Partition, tuple[int, int]],
    ) -> None:
        super().__init__(
            full._max_wait_ms,
            full._min_bytes,
            full._max_bytes,
            full._isolation_level,
            full.topics,
            rack_id=full._rack_id,
        )
        self.session_id, self.epoch = session_id, epoch
        self._send, self._forget, self.wanted = send, forget, wanted

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < FIRST_SESSION_VERSION:
            self.session_id, self.epoch = 0, -1  # no sessions: every partition, every time
            return super().build(request_struct_class)
        full: Topics = self._topics  # type: ignore[has-type]
        self._topics = self._send
        try:
            struct = super().build(request_struct_class)
        finally:
            self._topics = full
        struct.__dict__.update(
            session_id=self.session_id,
            session_epoch=self.epoch,
            forgotten_topics_data=self._forget,
        )
        return struct


@dataclass
class Session:
    """One broker's fetch session, as the broker holds it after the last answer."""

    id: int = 0
    epoch: int = OPEN_EPOCH
    #: each partition in the session: (fetch offset, max bytes) as last sent
    held: dict[Partition, tuple[int, int]] = field(default_factory=dict)

    def request(self, full: FetchRequest) -> SessionFetchRequest:
        wanted = {(t, p): (offset, most) for t, parts in full.topics for p, offset, most in parts}
        if self.epoch == OPEN_EPOCH:
            return SessionFetchRequest(full, 0, OPEN_EPOCH, full.topics, [], wanted)
        send: dict[str, list[tuple[int, int, int]]] = {}
        for (topic, partition), (offset, most) in wanted.items():
            if self.held.get((topic, partition)) != (offset, most):
                send.setdefault(topic, []).append((partition, offset, most))
        forget: dict[str, list[int]] = {}
        for topic, partition in self.held:
            if (topic, partition) not in wanted:
                forget.setdefault(topic, []).append(partition)
        return SessionFetchRequest(
            full, self.id, self.epoch, list(send.items()), list(forget.items()), wanted
        )

    def answered(self, request: SessionFetchRequest, session_id: int) -> None:
        """The broker accepted ``request`` and answers within session ``session_id``."""
        if request.epoch < 0 or session_id == 0:  # no session: the next request is full
            self.reset()
            return
        if request.epoch != OPEN_EPOCH and session_id != self.id:
            log.warning("fetch session %d answered as %d; opening a new one", self.id, session_id)
            self.reset()
            return
        self.id = session_id
        self.epoch = 1 if request.epoch >= MAX_EPOCH else request.epoch + 1
        self.held = request.wanted

    def reset(self) -> None:
        self.id, self.epoch, self.held = 0, OPEN_EPOCH, {}


class FetchSessions:
    """An aiokafka client as its fetcher sees it, with a fetch session per broker."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sessions: dict[int, Session] = {}
        self.full_fetches = self.incremental_fetches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send(self, node_id: int, request: Any, **options: Any) -> Any:
        if not isinstance(request, FetchRequest):
            return await self._client.send(node_id, request, **options)
        session = self.sessions.setdefault(node_id, Session())
        for attempt in range(2):
            sent = session.request(request)
            response = await self._client.send(node_id, sent, **options)
            if sent.epoch == OPEN_EPOCH or sent.epoch < 0:
                self.full_fetches += 1
            else:
                self.incremental_fetches += 1
            error = getattr(response, "error_code", 0)
            if not error:
                session.answered(sent, getattr(response, "session_id", 0))
                return response
            session.reset()
            if error not in (SESSION_ID_NOT_FOUND, INVALID_SESSION_EPOCH) or attempt:
                return response
            log.info("fetch session with node %s lost (error %d): a full fetch", node_id, error)
        raise AssertionError("unreachable")


class SessionConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka is untyped
    """An aiokafka consumer whose fetches go through :class:`FetchSessions`."""

    fetch_sessions: FetchSessions | None = None

    async def start(self) -> None:
        await super().start()
        fetcher = self._fetcher
        self.fetch_sessions = fetcher._client = FetchSessions(fetcher._client)

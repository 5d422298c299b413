"""Whether the control topics a process replayed are still the ones on the bus.

A process's control state is what it read of ``gov.ctl.schemas``,
``gov.ctl.catalog`` and ``gov.ctl.grants``: for each partition, from a first
offset up to a position. If the topic is deleted, recreated, or truncated
(``DeleteRecords``, a retention that expired records), that state holds
catalogs and grants that no longer exist on the bus, and following the
topic on from the old position reads the wrong records, or none. This module
says when that happened, with three signs:

* **topic id** (Metadata v10+, :mod:`exchange.bus.topic_ids`; Apache Kafka 2.8+
  and the embedded broker report it): another id is another topic, at once;
  no topic under the name is a deletion (confirmed on a second look);
* **log start** (ListOffsets "earliest") past the first offset replayed: records
  the state was built from are gone (truncated) — at once;
* **high watermark** (from fetch answers, right on both engines; never the
  "latest" ListOffsets, which the embedded broker under-reports) below the
  position replayed to: the log went backwards (confirmed on a second look, as
  a new partition leader may answer with a stale high watermark for a moment).

Public surface: :class:`Lineage` (``start``, ``check``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from exchange.bus.topic_ids import topic_ids
from exchange.errors import BrokerUnavailable, ControlStateReset

CONFIRM_S = 0.5  # a sign that may be a passing state must still hold this long after
#: how long a check waits for the log starts (ListOffsets "earliest"). aiokafka retries a
#: partition whose topic the leader no longer knows until the consumer's request timeout
#: (30 s): a check that ran between a deletion and the next metadata answer would hold the
#: follower that long, and the deletion would be found only after it. A session about to act
#: waits longer (it has no next check): a loaded broker may take seconds to answer
LOG_START_TIMEOUT_MS = 3000
SESSION_LOG_START_TIMEOUT_MS = 10_000


@dataclass
class _Mark:
    """What was replayed of one control partition."""

    topic_id: uuid.UUID | None  # None: the broker reports no topic ids
    first: int  # the log start when replay began: the first offset the state may rest on


class Lineage:
    """The identity and extent of the control partitions a state was built from."""

    def __init__(self) -> None:
        self.marks: dict[TopicPartition, _Mark] = {}
        self._suspect: dict[tuple[TopicPartition, str], float] = {}  # sign -> first seen

    async def start(self, consumer: Any, tps: list[TopicPartition], first: dict[str, int]) -> None:
        """Note the topic ids and the first offsets (by topic) a replay starts from."""
        ids = await topic_ids(consumer._client, [tp.topic for tp in tps]) or {}
        self.marks = {tp: _Mark(ids.get(tp.topic), first.get(tp.topic, 0)) for tp in tps}
        self._suspect.clear()

    async def check(self, consumer: Any, positions: dict[str, int], *, confirm: bool) -> None:
        """Raise :class:`ControlStateReset` if a control partition went backwards.

        ``positions``: by topic, the next offset the state would apply. ``confirm``:
        whether a sign that needs confirmation may be waited for (a follower checking
        again later) or must be taken as it is (a session about to act).
        """
        ids = await topic_ids(consumer._client, [tp.topic for tp in self.marks])
        present = []
        for tp, mark in self.marks.items():
            had = f"read to offset {positions.get(tp.topic, mark.first)}"
            if ids is None or mark.topic_id is None:
                present.append(tp)
                continue
            now_id = ids.get(tp.topic)
            if now_id is None:
                self._sign(
                    tp, "deleted", f"topic id {mark.topic_id}, {had}", "no such topic", confirm
                )
                continue
            self._suspect.pop((tp, "deleted"), None)
            if now_id != mark.topic_id:
                self._raise(
                    tp, "recreated", f"topic id {mark.topic_id}, {had}", f"topic id {now_id}"
                )
            present.append(tp)
        starts = await self._log_starts(consumer, present, confirm=confirm)
        for tp in present:
            mark, at = self.marks[tp], positions.get(tp.topic, self.marks[tp].first)
            if starts.get(tp, 0) > mark.first:
                self._raise(
                    tp,
                    "truncated",
                    f"replayed offsets {mark.first} to {at - 1}",
                    f"log start offset {starts[tp]}",
                )
            hw = consumer.highwater(tp)
            if hw is not None and hw < at:
                self._sign(
                    tp, "went backwards", f"read to offset {at}", f"high watermark {hw}", confirm
                )
            else:
                self._suspect.pop((tp, "went backwards"), None)

    async def _log_starts(
        self, consumer: Any, present: list[TopicPartition], *, confirm: bool
    ) -> dict[TopicPartition, int]:
        """The log start of each partition in ``present``, asked for at most
        :data:`LOG_START_TIMEOUT_MS` (a session: :data:`SESSION_LOG_START_TIMEOUT_MS`). A partition the broker does not answer for in that time
        is a topic deleted under the metadata this process holds, or a broker not answering:
        a follower (``confirm``) checks again (the timeout propagates to its retry), and its
        next metadata answer says which; a session about to act is told the bus did not
        answer."""
        if not present:
            return {}
        timeout_ms = LOG_START_TIMEOUT_MS if confirm else SESSION_LOG_START_TIMEOUT_MS
        try:
            return dict(await consumer._fetcher.beginning_offsets(present, timeout_ms))
        except KafkaTimeoutError as exc:
            if not confirm:
                raise BrokerUnavailable(
                    "the control topics' log start offsets were not answered within "
                    f"{timeout_ms / 1000:g} s"
                ) from exc
            raise

    def _sign(self, tp: TopicPartition, kind: str, had: str, found: str, confirm: bool) -> None:
        key = (tp, kind)
        first_seen = self._suspect.setdefault(key, time.monotonic())
        if not confirm or time.monotonic() - first_seen >= CONFIRM_S:
            self._raise(tp, kind, had, found)

    def _raise(self, tp: TopicPartition, kind: str, had: str, found: str) -> None:
        raise ControlStateReset(
            f"control topic {tp.topic}[{tp.partition}] {kind}: this process had {had}, "
            f"the bus has {found}; the grants and catalog it holds may not exist any more",
            topic=tp.topic,
            partition=tp.partition,
            kind=kind,
            had=had,
            found=found,
        )

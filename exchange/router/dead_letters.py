"""Dead letters: a source record the router cannot route, onto ``gov.dlq.<resource>``.

The record goes as the provider wrote it (its value dropped if over
``MAX_VALUE_BYTES``), with the reason and where it came from in headers of
the router's own; a provider's headers of those names are dropped so they
cannot pass for the router's. Each dead letter is logged, counted and
audited (one RECORD_DEAD_LETTERED entry), and its send's future settles with
the batch it came in.

Public surface: :class:`DeadLetters` (``send``) and the header names
:data:`DLQ_REASON`, :data:`SOURCE_TOPIC`, :data:`SOURCE_OFFSET` (the last
also on every delivery).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.limits import MAX_VALUE_BYTES  # publishers refuse larger values up front
from exchange.control.state import ControlState
from exchange.metrics import RouterMetrics
from exchange.router.notices import provider_of

# the router's one logger: its log lines read as they did before the split
log = logging.getLogger("exchange.router.loop")

DLQ_REASON = "gov-dlq-reason"
SOURCE_TOPIC = "gov-source-topic"
SOURCE_OFFSET = "gov-source-offset"

_OURS = (DLQ_REASON, SOURCE_TOPIC, SOURCE_OFFSET)


class DeadLetters:
    """Sends dead letters through the router's producer; makes their topics on first use.

    ``known_topics`` is shared with the view table: topics made already.
    """

    def __init__(
        self,
        producer: Any,
        state: ControlState,
        metrics: RouterMetrics,
        audit: Callable[[Draft], None],
        *,
        bus: Connection,
        known_topics: set[str],
    ) -> None:
        self.producer = producer
        self.state = state
        self.metrics = metrics
        self.audit = audit
        self.bus = bus
        self.known_topics = known_topics

    async def send(self, resource: str, rec: Any, reason: str) -> Any:
        """Dead-letter source record ``rec`` of ``resource``; the send's future."""
        log.warning("dead letter %s[%s]@%s: %s", rec.topic, rec.partition, rec.offset, reason)
        self.metrics.dead_letters.labels(resource).inc()
        dlq = topics.dead_letter(resource)
        self.audit(
            Draft(
                Action.RECORD_DEAD_LETTERED,
                actor="router",
                decision=Decision.DEAD_LETTERED,
                resource=resource,
                provider=provider_of(self.state, resource),
                reason=reason,
                details=detail_map(
                    source_topic=rec.topic,
                    partition=rec.partition,
                    offset=rec.offset,
                    dead_letter_topic=dlq,
                ),
            )
        )
        if dlq not in self.known_topics:
            await kafka.ensure_topics(self.bus, [dlq], partitions=1)
            self.known_topics.add(dlq)
        headers = [  # a provider's own headers of these names would pass for ours: dropped
            *[(k, v) for k, v in rec.headers or () if k not in _OURS],
            (DLQ_REASON, reason.encode("utf-8")),
            (SOURCE_TOPIC, rec.topic.encode()),
            (SOURCE_OFFSET, f"{rec.partition}:{rec.offset}".encode()),
        ]
        value = rec.value if rec.value is None or len(rec.value) <= MAX_VALUE_BYTES else None
        return await self.producer.send(dlq, value=value, key=rec.key, headers=headers)

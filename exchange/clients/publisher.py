"""Typed publishing for department systems (the provider side).

A batch or a file is accepted whole or refused whole. Every record is
checked against its resource's schema, and its size against what Kafka and
the router take (:mod:`exchange.bus.limits`), before anything is sent: an invalid
record raises :class:`RecordInvalid` naming the field and the problem, one too
large :class:`RecordTooLarge` with its size and the limit; either names the
line of a file, or the record's index in a batch, and nothing is sent.

A batch larger than one Kafka request goes out in several, each acknowledged
by the broker. If the broker fails part way, the records it acknowledged stay
on the bus (Kafka has no undo, and the embedded broker no transactions) and
:class:`PublishIncomplete` says how many; sending the same records again is
safe, since they keep their record ids and readers drop the duplicates.

Each record gets:

* key: the value of the resource's key field (Kafka keeps order per key);
* header ``gov-record-id``: a stable id, the SHA-256 of resource and Avro body,
  so a re-sent record has the same id and consumers can drop duplicates;
* header ``gov-publisher``: the publishing department.

A deletion (删除, :meth:`Publisher.delete`) is a tombstone: the record's key and
no value. The router delivers it to every consumer whose view holds the key
(:mod:`exchange.router.deletions`), and compaction of the source topic keeps
it a day after it removed the older records of the key, so no backfill brings
the record back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import fastavro
from aiokafka.errors import KafkaError
from fastavro.validation import ValidationError

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.avro.jsoncodec import FieldProblem, from_json
from exchange.bus import kafka, limits, topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import DELETED, DELETION, PUBLISHER, RECORD_ID, deletion_id, record_id
from exchange.bus.outbox import Outbox
from exchange.bus.partitioner import partition_of
from exchange.catalog.model import Catalog, Resource
from exchange.errors import ExchangeError, PermissionDenied, PublishIncomplete, RecordInvalid


@dataclass(frozen=True)
class Prepared:
    """A validated, encoded record ready to send (``line``: where a file had it)."""

    topic: str
    key: bytes
    value: bytes | None  # None: a deletion (tombstone)
    record_id: str
    headers: list[tuple[str, bytes]]
    resource: str
    line: int | None = None


# what fastavro raises when it cannot prepare a logical value (a date string that is
# not a date, a Decimal with more places than the schema's scale ...)
_PREPARE_ERRORS = (ValueError, TypeError, ArithmeticError)


def _culprit(parsed: Any, record: Mapping[str, Any]) -> str | None:
    """The top-level field whose value fastavro cannot prepare, found field by field."""
    for f in parsed.get("fields", []) if isinstance(parsed, dict) else []:
        if f["name"] not in record:
            continue
        try:
            fastavro.validation.validate(record[f["name"]], f["type"], raise_errors=False)
        except _PREPARE_ERRORS:
            return str(f["name"])
        except Exception:  # noqa: S112 - a type named elsewhere: cannot check it alone
            continue
    return None


def _field_of(exc: ValidationError) -> tuple[str | None, str]:
    for err in getattr(exc, "errors", []) or []:
        name = getattr(err, "field", None)
        if name:
            short = str(name).rsplit(".", 1)[-1]
            return short, f"{err.datum!r} is not a valid {json.dumps(err.schema)}"
    return None, str(exc)


MAX_KEY = 1000  # characters of a key field's value


def now_stamp() -> bytes:
    """Nanoseconds since the epoch, as text: what makes each deletion's id its own."""
    return str(time.time_ns()).encode()


def _key_text(res: Resource, key: object, index: int | None) -> str:
    """The Kafka key of ``key`` as the publisher writes it (``str`` of the key field)."""
    avro_type = res.field(res.key).avro_type
    kind = avro_type if isinstance(avro_type, str) else None
    if isinstance(key, bool) or key is None:
        problem = f"{key!r} is not a value of the key field"
    elif kind in ("int", "long"):
        try:
            number = int(str(key).strip())
        except ValueError:
            number = None
        problem = "" if number is not None else f"{key!r} is not an integer ({kind} key)"
        key = number
    else:
        problem = "" if str(key).strip() else "an empty key names no record"
    text = str(key)
    if not problem and len(text) > MAX_KEY:
        problem = f"the key is {len(text)} characters long; at most {MAX_KEY}"
    if problem:
        raise RecordInvalid(problem, resource=res.id, field=res.key, index=index)
    return text


class Publisher:
    """Publishes records of the resources one department provides.

    Use as ``async with Publisher(bus, catalog, "health") as pub:`` then
    ``await pub.publish("birth_medical_certificate", records)``.
    """

    def __init__(
        self, bus: Connection, catalog: Catalog, department: str, *, partitions: int | None = None
    ) -> None:
        self.catalog = catalog
        self.partitions = partitions
        self._topics: set[str] = set()
        self.department = catalog.department(department).id
        self.bus = bus
        self._producer: Any = None
        self._parsed: dict[str, Any] = {}
        self._limits: dict[str, limits.Limit] = {}
        self._batch_size = kafka.MAX_BATCH_SIZE

    async def start(self) -> None:
        if self._producer is None:
            producer = kafka.producer(self.bus, max_batch_size=self._batch_size)
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _resource(self, resource_id: str) -> Resource:
        res = self.catalog.resource(resource_id)
        if res.provider != self.department:
            raise PermissionDenied(
                f"department {self.department!r} cannot publish {resource_id!r}: "
                f"its provider is {res.provider!r}",
                department=self.department,
                resource=resource_id,
                rule="only the provider publishes a resource",
            )
        if resource_id not in self._parsed:
            self._parsed[resource_id] = avro.parse(res.schema_)
        return res

    def prepare(
        self,
        resource_id: str,
        record: Mapping[str, Any],
        *,
        line: int | None = None,
        index: int | None = None,
    ) -> Prepared:
        """Validate and encode one record (Python form); raises :class:`RecordInvalid`.

        ``line`` (of a file) or ``index`` (in a batch) says where it was, in errors.
        """
        res = self._resource(resource_id)
        parsed = self._parsed[resource_id]

        def invalid(problem: str, field: str | None = None) -> RecordInvalid:
            return RecordInvalid(problem, resource=resource_id, field=field, line=line, index=index)

        extra = sorted(set(record) - set(res.field_names()))
        if extra:
            raise invalid("is not a field of the schema", extra[0])
        try:
            # the quiet check is ~3x faster (no error objects for every union branch that
            # does not match); only a record that fails it is checked again for the details
            if not fastavro.validation.validate(record, parsed, raise_errors=False):
                fastavro.validation.validate(record, parsed, raise_errors=True)
        except ValidationError as exc:
            field, problem = _field_of(exc)
            raise invalid(problem, field) from None
        except _PREPARE_ERRORS as exc:
            field = _culprit(parsed, record)
            problem = f"{record[field]!r} is not valid: {exc}" if field else str(exc)
            raise invalid(problem, field) from None
        try:
            body = wire.encode(parsed, dict(record))
        except (ValueError, TypeError, OverflowError) as exc:
            raise invalid(str(exc)) from exc
        rid = record_id(resource_id, body)
        key = record[res.key]
        return Prepared(
            topic=topics.source(res.provider, res.id),
            key=str(key).encode("utf-8"),
            value=wire.frame(res.schema_id, body),
            record_id=rid,
            headers=[(RECORD_ID, rid.encode()), (PUBLISHER, self.department.encode())],
            resource=res.id,
            line=line,
        )

    def prepare_deletion(
        self, resource_id: str, key: object, *, index: int | None = None
    ) -> Prepared:
        """A tombstone for the record of ``key`` (its key field's value); checks the key.

        A key that its key field could not hold (not an integer for an ``int`` or ``long``
        key, empty, too long) raises :class:`RecordInvalid` naming the key field.
        """
        res = self._resource(resource_id)
        text = _key_text(res, key, index)
        body = text.encode("utf-8")
        rid = deletion_id(res.id, body, now_stamp())
        return Prepared(
            topic=topics.source(res.provider, res.id),
            key=body,
            value=None,
            record_id=rid,
            headers=[
                (RECORD_ID, rid.encode()),
                (PUBLISHER, self.department.encode()),
                (DELETION, DELETED.encode()),
            ],
            resource=res.id,
        )

    def prepare_encoded(
        self, resource_id: str, encoded: Iterable[tuple[str, bytes]]
    ) -> list[Prepared]:
        """Records to send from Avro bodies the caller checked and encoded itself.

        For bulk producers that check every value as they build it (the database
        source converts each column with a checking function and encodes a whole
        batch with one parsed schema): ``encoded`` holds each record's key (the value
        of the resource's key field, as text) and its Avro body in the resource's
        schema. The caller is answerable for the check; :meth:`prepare` is the way
        for records not checked yet.
        """
        res = self._resource(resource_id)
        topic = topics.source(res.provider, res.id)
        publisher = (PUBLISHER, self.department.encode())
        header = wire.frame(res.schema_id, b"")
        out = []
        for key, body in encoded:
            rid = record_id(resource_id, body)
            out.append(
                Prepared(
                    topic=topic,
                    key=key.encode("utf-8"),
                    value=header + body,
                    record_id=rid,
                    headers=[(RECORD_ID, rid.encode()), publisher],
                    resource=res.id,
                )
            )
        return out

    def prepare_json_lines(self, resource_id: str, path: Path) -> list[Prepared]:
        """Validate a whole JSON Lines file; the first bad line raises with its number."""
        res = self._resource(resource_id)
        out = []
        try:
            fh = path.open(encoding="utf-8")
        except OSError as exc:
            raise ExchangeError(f"{path}: cannot read: {exc.strerror}") from exc
        with fh:
            try:
                for number, text in enumerate(fh, start=1):
                    if not text.strip():
                        continue
                    try:
                        data = json.loads(text)
                    except json.JSONDecodeError as exc:
                        raise RecordInvalid(
                            f"not valid JSON: {exc.msg}", resource=resource_id, line=number
                        ) from None
                    try:
                        record = from_json(res.schema_, data)
                    except FieldProblem as exc:
                        raise RecordInvalid(
                            exc.message, resource=resource_id, field=exc.path, line=number
                        ) from None
                    out.append(self.prepare(resource_id, record, line=number))
            except UnicodeDecodeError as exc:
                raise ExchangeError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        return out

    async def check(self, prepared: Sequence[Prepared]) -> None:
        """Raise :class:`RecordTooLarge` if any record is too large for the bus; sends nothing.

        Reads each topic's ``max.message.bytes`` from the broker once per publisher.
        """
        new_topics = {p.topic for p in prepared} - self._limits.keys()
        if new_topics:
            self._limits.update(await limits.topic_limits(self.bus, new_topics))
        limits.check(prepared, self._limits)

    async def _fit_batches(self) -> None:
        """Keep record batches within every topic's limit: the broker refuses a larger one whole."""
        smallest = min(limit.bytes for limit in self._limits.values())
        if smallest < self._batch_size:
            await self.stop()
            self._batch_size = smallest
            await self.start()

    async def send(self, prepared: Iterable[Prepared]) -> int:
        """Check every record's size, send them all, and wait for every acknowledgement.

        A record too large refuses the whole batch before anything is sent
        (:class:`RecordTooLarge`). A broker failing part way raises
        :class:`PublishIncomplete` with the number it acknowledged.
        """
        if self._producer is None:
            raise ExchangeError("Publisher is not started: use 'async with Publisher(...)'")
        items = list(prepared)
        if not items:
            return 0
        await self.check(items)
        await self._fit_batches()
        new_topics = {p.topic for p in items} - self._topics
        if new_topics:
            await kafka.ensure_topics(self.bus, new_topics, partitions=self.partitions)
            self._topics |= new_topics
        await self._produce(items)
        return len(items)

    async def _produce(self, items: list[Prepared]) -> None:
        """Put every record in its partition's record batch, send the batches, then wait for
        every acknowledgement.

        A record's partition is the one every Kafka client's default partitioner gives its
        key (:func:`~exchange.bus.partitioner.partition_of`), so one key's records stay in
        order whichever client publishes them; the records go to the broker as whole
        batches (:class:`~exchange.bus.outbox.Outbox`), not one ``send`` each.
        """
        outbox = Outbox(self._producer)
        counts = {t: len(await self._producer.partitions_for(t)) for t in {p.topic for p in items}}
        spread = 0  # records without a key (none from a catalog resource): round robin
        for p in items:
            if p.key is not None:
                partition = partition_of(p.key, counts[p.topic])
            else:
                partition, spread = spread % counts[p.topic], spread + 1
            outbox.add(p.topic, partition, p.key, p.value, p.headers)
        cause: BaseException | None = None
        futures: list[asyncio.Future[Any]] = []
        try:
            futures = await outbox.send()
        except KafkaError as exc:  # the batches before it are on their way: count their acks
            cause, futures = exc, outbox.sent
        results = await asyncio.gather(*futures, return_exceptions=True)
        acknowledged = 0
        failed = []
        for result, records in zip(results, outbox.batch_records, strict=False):
            if isinstance(result, BaseException):
                if not isinstance(result, KafkaError):
                    raise result
                failed.append(result)
            else:
                acknowledged += records
        if cause is not None or failed:
            raise PublishIncomplete(
                acknowledged=acknowledged, total=len(items), cause=cause or failed[0]
            )

    async def publish(self, resource_id: str, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Check every record, then send them all; returns their record ids.

        All or nothing: a record that is invalid or too large raises
        (:class:`RecordInvalid`, :class:`RecordTooLarge`, naming its index in
        ``records``) and nothing is sent.
        """
        prepared = [self.prepare(resource_id, r, index=i) for i, r in enumerate(records)]
        await self.send(prepared)
        return [p.record_id for p in prepared]

    async def delete(self, resource_id: str, keys: Iterable[object]) -> list[str]:
        """Delete the records of ``keys`` (values of the resource's key field); their ids.

        All or nothing, like :meth:`publish`: a key that is not valid raises
        :class:`RecordInvalid` (naming its index) and nothing is sent. Deleting a key
        that has no record is harmless: no consumer holds it.
        """
        prepared = [self.prepare_deletion(resource_id, k, index=i) for i, k in enumerate(keys)]
        await self.send(prepared)
        return [p.record_id for p in prepared]

    async def publish_file(self, resource_id: str, path: Path) -> int:
        """Publish a JSON Lines file, checked as a whole (naming the line) before anything is sent."""
        return await self.send(self.prepare_json_lines(resource_id, path))

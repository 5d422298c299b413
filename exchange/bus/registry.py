"""Schema registry kept on the ``gov.ctl.schemas`` topic.

Like Karapace's ``_schemas`` topic: every resource, view and control record
schema is one record, keyed by its schema id, valued with its JSON; every
framed record on the bus resolves through it. Each
process keeps the schemas in memory and re-reads the topic when it meets an
id it does not know yet. Schema ids are content hashes (:mod:`exchange.avro.schema`),
so two processes registering the same schema agree on its id without talking.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from exchange.avro import schema as avro
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.errors import DecodeError, SchemaError


class SchemaRegistry:
    def __init__(self, bus: Connection) -> None:
        self.bus = bus
        self._schemas: dict[int, avro.Schema] = {}
        self._parsed: dict[int, Any] = {}

    def __contains__(self, sid: int) -> bool:
        return sid in self._schemas

    def clear(self) -> None:
        """Forget every schema (after ``gov.ctl.schemas`` was reset: it may lack them now)."""
        self._schemas.clear()
        self._parsed.clear()

    def add(self, schema: avro.Schema) -> int:
        """Know a schema locally (no write); returns its id."""
        sid = avro.schema_id(schema)
        known = self._schemas.get(sid)
        if known is not None and avro.canonical_json(known) != avro.canonical_json(schema):
            raise SchemaError(f"schema id {sid} collides with a different schema")
        if known is None:
            self._parsed[sid] = avro.parse(schema, where=f"schema {sid}")
            self._schemas[sid] = schema
        return sid

    async def refresh(self) -> None:
        """Read every schema registered so far."""
        for rec in await kafka.read_to_end(self.bus, topics.SCHEMAS):
            if rec.value is None:
                continue
            try:
                self.add(json.loads(rec.value))
            except (ValueError, SchemaError):
                continue  # a foreign or broken record: it cannot be a schema of ours

    async def register(self, producer: AIOKafkaProducer, schema: avro.Schema) -> int:
        """Make a schema resolvable by every process; idempotent."""
        await self.register_all(producer, [schema])
        return avro.schema_id(schema)

    async def register_all(
        self, producer: AIOKafkaProducer, schemas: Iterable[avro.Schema]
    ) -> None:
        """Register every schema not known yet, all acknowledged before this returns.

        A schema counts as known only once the broker has it, so a write that
        fails is written again by the next call.
        """
        new: dict[int, tuple[avro.Schema, Any]] = {}
        for schema in schemas:
            sid = avro.schema_id(schema)
            if sid in self._schemas:
                self.add(schema)  # checks the id does not collide with a different schema
            elif sid not in new:  # parsed first: nothing broken is written
                new[sid] = (schema, avro.parse(schema, where=f"schema {sid}"))
        sent = [
            await producer.send(
                topics.SCHEMAS,
                key=str(sid).encode(),
                value=avro.canonical_json(schema).encode("utf-8"),
            )
            for sid, (schema, _) in new.items()
        ]
        for ack in sent:
            await ack
        for sid, (schema, parsed) in new.items():
            self._schemas[sid], self._parsed[sid] = schema, parsed

    def schema(self, sid: int) -> avro.Schema:
        return self._schemas[sid]

    def parsed(self, sid: int) -> Any:
        return self._parsed[sid]

    async def resolve(self, sid: int) -> Any:
        """Parsed schema of an id, re-reading the topic once if it is new to us."""
        if sid not in self._parsed:
            await self.refresh()
        try:
            return self._parsed[sid]
        except KeyError:
            raise DecodeError(
                f"unknown schema id {sid}: not registered on {topics.SCHEMAS}"
            ) from None

"""The backfill worker renders exactly as the router does, and a worker that fails says so.

The worker process compiles the consumer's view again from a :class:`Recipe` (sent to
it pickled): its bytes must be the router's bytes, masks and row filter included.
"""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

from aiokafka import TopicPartition

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.dev import sample
from exchange.router.backfill_process import WorkerReader
from exchange.router.backfill_render import Renderer
from exchange.router.backfill_scan import Part
from exchange.router.backfill_worker import Recipe
from exchange.router.view import compile_view
from exchange.router.view_table import Decoder
from exchange.sharing.policy import View

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BMC = "birth_medical_certificate"
SECRET = b"a test mask secret, 32 bytes ok!"
VIEW = View(
    consumer="police",
    resource=BMC,
    provider="health",
    fields=("certificate_no", "mother_name", "region_code"),
    masks={"mother_name": "surname"},
    row_filter='region_code.startsWith("3301")',
    grant_id="GR-1",
)


@dataclass
class Rec:
    """A source record as a Kafka consumer gives it: offset, key, value."""

    offset: int
    key: bytes | None
    value: bytes | None


def _recipe(view: View = VIEW) -> tuple[Recipe, Renderer]:
    res = load_catalog(SCHEMAS).resources[BMC]
    parsed = avro.parse(res.schema_)
    decoder = Decoder.from_schemas(res, parsed, {res.schema_id: parsed})
    router = Renderer(res, decoder, compile_view(res, view, SECRET, decoder.scanner))
    recipe = Recipe(Connection("127.0.0.1:9"), res, view, SECRET, parsed, {res.schema_id: parsed})
    return recipe, router


def test_a_worker_renders_the_routers_bytes() -> None:
    recipe, router = _recipe()
    res = recipe.res
    parsed = avro.parse(res.schema_)
    rows = sample.generate(res.schema_, 300, seed=16)
    for i, row in enumerate(rows[::3]):
        row["region_code"] = "330106"  # a third pass the filter at least
        rows[3 * i] = row
    records = [
        Rec(i, None, wire.frame(res.schema_id, wire.encode(parsed, row)))
        for i, row in enumerate(rows)
    ]
    records.append(Rec(300, b"K1", None))  # a tombstone: its key is dropped
    worker = pickle.loads(pickle.dumps(recipe)).renderer()  # as the fork server gets it
    got = worker.render(250, records)
    assert got == router.render(250, records)
    kept, next_offset = got
    assert next_offset == 301
    assert [offset for _, offset, _, _ in kept[250:]] == [-1] * 51  # from the cut-over on
    rendered = [out for _, offset, out, _ in kept if offset >= 0]
    assert None in rendered  # the row filter dropped some
    passed = [out for out in rendered if out is not None]
    assert len(passed) >= 80
    clear = {row["mother_name"] for row in rows}
    assert not any(name.encode() in out for name in clear for out in passed)  # masked


def test_a_worker_that_fails_is_reported_to_the_router() -> None:
    bad = replace(VIEW, fields=("certificate_no", "no_such_field"))
    recipe = replace(_recipe()[0], view=bad)

    async def run() -> BaseException | None:
        reader = WorkerReader(recipe, "test", lambda part, step: None)
        reader.start([Part(TopicPartition("gov.src.health.bmc", 0), cutover=10)])
        try:
            for _ in range(300):  # the fork server starts first: a second or two
                if reader.failed is not None:
                    break
                await asyncio.sleep(0.05)
            return reader.failed
        finally:
            await reader.stop()

    failed = asyncio.run(run())
    assert failed is not None
    assert "no_such_field" in str(failed)

"""What two parts of a gateway answer cost, in this process: its audit entry and its JSON.

``python -m exchange.dev.gateway_parts_cost [--rounds N] [--against TREE]``

* **audit entry**: entries of a gateway lookup (``RECORD_QUERIED``, the details the gateway
  writes) sealed, encoded and handed over by an :class:`~exchange.audit.writer.AuditWriter`,
  16 a call (the requests of one turn of the event loop), to a stand-in producer that
  acknowledges each record at once: the writer's CPU, without the broker or the network
  (``gateway_bench`` measures those);
* **JSON answer**: the body of a record answer (a masked name, a date, a timestamp).

Printed: microseconds of CPU (``time.process_time``), the best of 5 rounds. With
``--against TREE`` the same is measured again from the source tree TREE (``git archive`` of
an earlier commit, put first on ``PYTHONPATH`` of a child process) right after, and the
ratios printed: the before and after of a change, in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from typing import Any

from exchange.audit.entry import Action, Decision, Draft
from exchange.audit.writer import AuditWriter

_DRAFT = Draft(
    Action.RECORD_QUERIED,
    actor="hrss",
    decision=Decision.ANSWERED,
    resource="population_basic",
    consumer="hrss",
    provider="public_security",
    grant_id="GR-20261130-1a2b3c4d",
    purpose="社保待遇核定",
    details={
        "key_hash": "0123456789abcdef0123456789abcdef",
        "fields": "name,birth_date,region_code,address,updated_at",
        "status": "200",
        "via": "gateway",
    },
)
_RECORD = {
    "name": "李*",
    "birth_date": dt.date(1946, 8, 17),
    "region_code": "330106",
    "address": "浙江省杭州市西湖区黄河路753号",
    "updated_at": dt.datetime(2026, 5, 28, 4, 26, 19, 46000, tzinfo=dt.UTC),
}
_PER_CALL = 16


class _Producer:
    """Acknowledges every record at once."""

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class _Registry:
    async def register(self, producer: Any, schema: Any) -> int:
        return 1


async def _entries(rounds: int) -> float:
    writer = AuditWriter(_Producer(), _Registry(), role="gateway", instance="h-1", signer=None)  # type: ignore[arg-type]
    drafts = [_DRAFT] * _PER_CALL
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            pending = await writer.send(drafts)
            wait = getattr(pending, "acknowledged", None) or pending.acked  # before: acked only
            await wait()
        best = min(best, (time.process_time() - started) / (rounds * _PER_CALL))
    return best * 1e6


def _answers(rounds: int) -> float:
    try:
        from exchange.gateway.api import RecordJSONResponse

        def answer() -> Any:
            return RecordJSONResponse(
                {
                    "resource": "population_basic",
                    "record": _RECORD,
                    "masked": {"name": "surname"},
                    "grant_id": "GR-1",
                }
            )
    except ImportError:  # before RecordJSONResponse: the answer as it was made
        from starlette.responses import JSONResponse

        from exchange.avro.jsoncodec import to_jsonable

        def answer() -> Any:
            return JSONResponse(
                {
                    "resource": "population_basic",
                    "record": to_jsonable(_RECORD),
                    "masked": {"name": "surname"},
                    "grant_id": "GR-1",
                }
            )

    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds * _PER_CALL):
            answer()
        best = min(best, (time.process_time() - started) / (rounds * _PER_CALL))
    return best * 1e6


def measure(rounds: int) -> dict[str, float]:
    return {"audit entry": asyncio.run(_entries(rounds)), "JSON answer": _answers(rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=500, help="writer calls of 16 entries")
    parser.add_argument("--against", help="a source tree to measure right after this one")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    now = measure(args.rounds)
    if args.json:
        print(json.dumps(now))
        return
    before: dict[str, float] | None = None
    if args.against:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(args.against)}
        out = subprocess.run(
            # this file, run with TREE's exchange package (which may not have this module)
            [sys.executable, __file__, "--rounds", str(args.rounds), "--json"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        before = json.loads(out)
    for part, us in now.items():
        line = f"{part:12} {us:7.2f} us of CPU"
        if before is not None and part in before:
            line += f"   before {before[part]:7.2f} us: {us / before[part]:.2f}x"
        print(line)


if __name__ == "__main__":
    main()

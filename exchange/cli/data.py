"""``exchange sample | publish | consume``: records in and out of the bus."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from exchange.avro.jsoncodec import dumps
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.cli.common import (
    AsOption,
    BootstrapOption,
    KeyOption,
    connection,
    fail,
    guarded,
    run,
    signing_key,
)
from exchange.clients import reader
from exchange.clients.publisher import Publisher
from exchange.control import catalog_store, state
from exchange.sharing.dispute_records import CORRECTS_HEADER
from exchange.sharing.policy import compute_view
from exchange.sharing.records import now


async def _catalog(bus: Connection) -> Catalog:
    snap = await catalog_store.current(bus)
    if snap is None:
        raise fail("no catalog loaded on this bus: run 'exchange catalog load schemas/' first")
    return snap.catalog


@guarded
def sample_cmd(
    resource: Annotated[str, typer.Argument(help="Resource id, e.g. birth_medical_certificate.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many records.")] = 10,
    seed: Annotated[int, typer.Option(help="Same seed, same records.")] = 0,
    catalog_dir: Annotated[
        Path, typer.Option("--catalog", help="Catalog directory the resource is in.")
    ] = Path("schemas"),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write realistic sample records of any resource as JSON Lines, generated from its schema."""
    from exchange.dev import sample  # its name and place tables take a while to import

    res = load_catalog(catalog_dir).resource(resource)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for line in sample.iter_json_lines(res.schema_, count, seed):
            out.write(line + "\n")
    finally:
        if output:
            out.close()


def publish(
    resource: Annotated[str, typer.Argument(help="Resource id (your department must provide it).")],
    file: Annotated[Path, typer.Argument(help="JSON Lines file, one record per line.")],
    department: AsOption,
    bootstrap_servers: BootstrapOption = None,
    corrects: Annotated[
        str | None,
        typer.Option(
            "--corrects",
            help="The file holds the corrected record of this dispute (疑义校核, "
            "DS-YYYYMMDD-xxxxxxxx): it goes to every consumer whose view it belongs to, "
            "marked with the dispute, and the dispute closes with a link to it.",
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Publish a JSON Lines file of records to gov.src.<provider>.<resource>.

    All or nothing: every line is checked before anything is sent, against the
    resource's schema and against the size limits: a record's value at most
    1,000,000 bytes (the router dead-letters larger ones), and the record with
    its key and headers at most 1 MiB (the producer's max_request_size) and the
    topic's max.message.bytes. The first bad line is reported with its number
    (and the field, or the size and the limit), and nothing of the file is sent.

    A file larger than one Kafka request goes out in several, each
    acknowledged by the broker. If the broker fails part way, the records it
    acknowledged stay published and the error says how many: publish the same
    file again, as its records keep their ids and readers drop duplicates.
    """
    bus = guarded(connection)(bootstrap_servers)
    if corrects is not None:
        _publish_correction(bus, department, corrects, file, key)
        return

    async def go() -> int:
        cat = await _catalog(bus)
        async with Publisher(bus, cat, department) as pub:
            prepared = pub.prepare_json_lines(resource, file)
            return await pub.send(prepared)

    n = run(go())
    typer.echo(f"published {n} records of {resource} as {department}")


def _publish_correction(
    bus: Connection, department: str, dispute_id: str, file: Path, key: Path | None
) -> None:
    from exchange.clients.department import Department

    async def go() -> str:
        async with Department(bus, department, signing_key=signing_key(key)) as d:
            closed = await d.correct(dispute_id, file)
        return closed.corrected_record_id or ""

    rid = run(go())
    typer.echo(f"published the corrected record {rid}; dispute {dispute_id} is closed")


def consume(
    resource: Annotated[str, typer.Argument(help="Resource id.")],
    department: AsOption,
    bootstrap_servers: BootstrapOption = None,
    max_records: Annotated[int | None, typer.Option("--max", help="Stop after N records.")] = None,
    timeout: Annotated[
        float, typer.Option(help="Stop after this many seconds without a new record.")
    ] = 5.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines (default: a summary line each).")
    ] = False,
    group: Annotated[
        str | None,
        typer.Option(help="Consumer group: resume where it stopped last time and commit progress."),
    ] = None,
) -> None:
    """Read your department's records of a resource, decoded with your view's schema.

    A consumer reads gov.dlv.<dept>.<resource> (what the router delivered to
    it); the provider reads its own source topic. Without --group it reads
    from the beginning. Duplicates (same record id) are dropped. Each line
    names the record's id (what 'exchange dispute' takes) and, for a corrected
    record, the dispute it corrects. A department
    that has not subscribed, or is not entitled, is told so and why (exit
    code 2), and nothing is created on the bus.
    """
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> int:
        s = await state.load(bus)
        view = compute_view(s.catalog, s.book, department, resource, at=now())
        if not view.receiving:
            raise fail(view.not_receiving() or "")
        n = 0
        async with reader.Reader(bus, view.topic, group=group) as r:
            async for batch in r.batches(idle_timeout=timeout):
                for item in batch:
                    if as_json:
                        typer.echo(dumps(item.value))
                    else:
                        where = f"{item.topic}[{item.partition}]@{item.offset}"
                        fixes = item.headers.get(CORRECTS_HEADER)
                        typer.echo(
                            f"{where} id={item.record_id} key={item.key}"
                            + (f" corrects={fixes}" if fixes else "")
                            + f" {dumps(item.value)}"
                        )
                    n += 1
                    if max_records is not None and n >= max_records:
                        return n
        return n

    n = run(go())
    if not as_json:
        typer.echo(f"{n} records", err=True)


def peek(
    topic: Annotated[str, typer.Argument(help="Topic, e.g. gov.dlq.birth_medical_certificate.")],
    bootstrap_servers: BootstrapOption = None,
    max_records: Annotated[int, typer.Option("--max", help="Stop after N records.")] = 20,
    timeout: Annotated[
        float, typer.Option(help="Stop after this many seconds without a new record.")
    ] = 5.0,
) -> None:
    """Read any topic your Kafka user may read, decoded: the broker's ACLs decide.

    For operators inspecting dead letters or control topics, and for checking
    the isolation: run as a department's user (EXCHANGE_SASL_USERNAME) on a
    cluster with ACLs, reading another department's gov.src.* or gov.dlv.* is
    refused by the broker (exit code 2), whatever the router would deliver.
    Reads from the beginning; commits nothing.
    """
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> int:
        n = 0
        async with reader.Reader(bus, topic, dedup=False) as r:
            async for batch in r.batches(idle_timeout=timeout):
                for item in batch:
                    typer.echo(
                        f"{item.topic}[{item.partition}]@{item.offset} key={item.key} {dumps(item.value)}"
                    )
                    n += 1
                    if n >= max_records:
                        return n
        return n

    n = run(go())
    typer.echo(f"{n} records of {topic} as {bus.principal or 'an anonymous client'}", err=True)

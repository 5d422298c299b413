"""``exchange delete``: a provider deletes records (删除); every consumer's copy follows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import AsOption, BootstrapOption, connection, fail, guarded, run


def _keys(keys: list[str] | None, keys_file: Path | None) -> list[str]:
    """The keys named on the command line, then those of ``keys_file`` (one a line)."""
    out = list(keys or [])
    if keys_file is not None:
        try:
            text = keys_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"--keys-file {keys_file}: cannot read it: {exc}") from None
        out.extend(line.strip() for line in text.splitlines() if line.strip())
    if not out:
        raise fail("name the keys to delete (KEY ..., or --keys-file FILE)")
    return out


def delete(
    resource: Annotated[str, typer.Argument(help="Resource id (your department must provide it).")],
    department: AsOption,
    keys: Annotated[
        list[str] | None,
        typer.Argument(help="Values of the resource's key field, e.g. a certificate number."),
    ] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option("--keys-file", help="A UTF-8 text file of keys to delete, one a line."),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Delete records of a resource you provide: a tombstone per key on gov.src.<you>.<resource>.

    The router then delivers a delete to every consumer whose view holds the
    key (a tombstone on gov.dlv.<consumer>.<resource>, keyed as that view keys
    the record); the database sink deletes the row, and a backfill never
    brings the record back. Each consumer's delete is audited
    (RECORD_DELETED), without any value. All or nothing: a key its key field
    cannot hold (not an integer for a numeric key, empty) is refused with its
    position, and nothing is sent. Deleting a key that has no record is
    harmless. Like 'exchange publish', only the provider may do it.
    """
    from exchange.clients.publisher import Publisher  # Kafka and Avro: imported when it runs
    from exchange.control import catalog_store

    wanted = _keys(keys, keys_file)
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> int:
        snap = await catalog_store.current(bus)
        if snap is None:
            raise fail("no catalog loaded on this bus: run 'exchange catalog load schemas/' first")
        async with Publisher(bus, snap.catalog, department) as pub:
            return len(await pub.delete(resource, wanted))

    n = run(go())
    typer.echo(
        f"deleted {n} record{'s' if n != 1 else ''} of {resource} as {department}: "
        "every consumer holding them receives a delete"
    )

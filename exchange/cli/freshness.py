"""``exchange freshness``: resources published less often than their update cycle (更新周期) says."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from exchange import beijing
from exchange.bus import topics
from exchange.bus.last_publish import last_publish_times
from exchange.catalog import freshness
from exchange.catalog.freshness import Freshness
from exchange.cli.common import BootstrapOption, connection, fail, guarded, print_json, run, table
from exchange.control import state


def _row(f: Freshness) -> dict[str, str]:
    return {
        "provider": f.provider,
        "resource": f.resource,
        "update_cycle": f.cycle.value,
        "last_publish": beijing.shown(f.last_publish) if f.last_publish else "never",
        "due_by": beijing.shown(f.due_by) if f.due_by else "",
        "status": "stale" if f.stale else "fresh",
        "late_by": freshness.shown_delta(f.late_by) if f.stale else "",
    }


def freshness_cmd(
    department: Annotated[
        str | None, typer.Option("--as", help="Only the resources this department provides.")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="List fresh resources too, not only stale ones.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(help="Measure as of this ISO 8601 time (with its zone), not now."),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List stale resources per provider: last publish older than the update cycle allows.

    A resource is stale when more time than its declared update cycle (更新周期)
    allows has passed since its last publish: real-time 1 hour, daily 1 day,
    weekly 7 days, monthly 31 days, quarterly 92 days, yearly 366 days;
    on-change resources are never stale. A resource never published is counted
    from now (the routers count it from when they first watched it). The last
    publish is read from the newest record of each source topic, so this needs
    a Kafka user that may read gov.src.* (the router's or an administrator's).
    """
    when = dt.datetime.now(dt.UTC)
    if at is not None:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise fail(f"--at {at!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise fail(f"--at {at!r} has no zone: add +08:00 (Beijing) or Z")
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> list[Freshness]:
        catalog = (await state.load(bus)).catalog
        if department is not None and department not in catalog.departments:
            raise fail(f"--as {department!r}: not a department of the catalog")
        by_topic = {topics.source(r.provider, r.id): r.id for r in catalog.resources.values()}
        found = await last_publish_times(bus, by_topic)
        last = {by_topic[t]: stamp for t, stamp in found.items()}
        return freshness.survey(catalog, last, at=when, since=when, provider=department)

    measured = [f for f in run(go()) if show_all or f.stale]
    rows = [_row(f) for f in measured]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no stale resource" + (f" of {department}" if department else ""))
        return
    keys = list(rows[0])
    typer.echo(table([[r[k] for k in keys] for r in rows], keys))

"""``exchange subscriptions | resync | snapshot``: full data (全量) besides the changes (增量).

A new subscription or grant first receives the current state of the resource
(the routers' backfill); ``subscriptions`` shows where it stands, ``resync``
asks for the whole view again, ``snapshot`` writes it to a file (文件下载).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import (
    AsOption,
    BootstrapOption,
    KeyOption,
    connection,
    guarded,
    print_json,
    run,
    settings,
    signing_key,
    table,
)
from exchange.clients.department import Department


def subscriptions(
    department: AsOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """List what you receive, and each backfill's progress (e.g. "backfill 412,000 / 1,000,000").

    A backfill delivers the current state of the resource under your view (each key's
    latest record) before the changes; the routers write its progress as they go.
    """
    from exchange.clients.resync import Subscription
    from exchange.clients.resync import subscriptions as listing

    bus = guarded(connection)(bootstrap_servers)

    async def go() -> list[Subscription]:
        async with Department(bus, department) as d:
            return await listing(bus, d)

    found = run(go())
    if as_json:
        print_json([s.__dict__ for s in found])
        return
    if not found:
        typer.echo(f"{department} receives no resource")
        return
    rows = [[s.resource, s.topic, str(len(s.fields)), s.grant_id or "-", s.backfill] for s in found]
    typer.echo(table(rows, ["resource", "delivered to", "fields", "grant", "全量 backfill"]))


def resync(
    resource: Annotated[str, typer.Argument(help="Resource id.")],
    department: AsOption,
    reason: Annotated[
        str | None, typer.Option(help="Why (a new system, a lost database): audited.")
    ] = None,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Ask for your full view of a resource again: the routers backfill it, then go on live.

    The provider may limit how often (resync_interval_hours in the catalog); a refusal
    says when the last resync was. The request is audited (RESYNC_REQUESTED).
    """
    from exchange.clients.resync import request_resync

    bus = guarded(connection)(bootstrap_servers)

    async def go() -> str:
        async with Department(bus, department, signing_key=signing_key(key)) as d:
            return await request_resync(bus, d, resource, reason=reason)

    request = run(go())
    typer.echo(
        f"resync {request} requested: {department} receives its view of {resource} again; "
        f"'exchange subscriptions --as {department}' shows the progress"
    )


def snapshot(
    resource: Annotated[str, typer.Argument(help="Resource id.")],
    department: AsOption,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The file: .jsonl, .csv or .parquet (the suffix says which)."
        ),
    ],
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Write a department's view of the current state of a resource to a file, with a manifest.

    Each key's latest record, masked and filtered as the department's deliveries are;
    FILE.manifest.json beside it names the grant, fields, masks, filter, row count and
    the file's SHA-256. Reads the source topic: run it with the routers' Kafka user and
    mask secret (EXCHANGE_MASK_SECRET). Audited as a delivery (kind snapshot).
    """
    from exchange.audit.entry import Action, Decision
    from exchange.router import mask_secret
    from exchange.router.snapshot import current_state
    from exchange.router.snapshot_file import format_of, write

    guarded(format_of)(output)
    s = settings()
    bus = guarded(connection)(bootstrap_servers)
    configured = guarded(s.mask_secret_value)()  # EXCHANGE_MASK_SECRET_FILE or _SECRET
    secret = guarded(mask_secret.resolve)(configured, bus, s.state_dir)

    async def go() -> dict[str, object]:
        async with Department(bus, department) as d:
            state = await current_state(bus, d.state, department, resource, secret.value)
            manifest = write(state, output)
            v = state.view.view
            await d.audit(
                Action.RECORDS_DELIVERED,
                Decision.DELIVERED,
                resource=resource,
                consumer=department,
                grant_id=v.grant_id,
                purpose=v.purpose,
                details={
                    "kind": "snapshot",
                    "record_count": str(manifest["rows"]),
                    "file": output.name,
                    "format": str(manifest["format"]),
                    "sha256": str(manifest["sha256"]),
                    "fields": ",".join(v.fields),
                    "masks": ",".join(f"{k}={m}" for k, m in sorted(v.masks.items())),
                    "row_filter": v.row_filter or "",
                    "view_schema_id": str(state.view.schema_id),
                },
            )
            return manifest

    manifest = run(go())
    typer.echo(
        f"wrote {manifest['rows']} records of {resource} ({department}'s view) to {output} "
        f"(sha256 {manifest['sha256']}); manifest: {output}.manifest.json"
    )

"""``exchange subscribe | explain | apply | applications | grants``.

The sharing workflow of the shared list (共享清单): unconditional data
(无条件共享) by subscription, conditional data (有条件共享) by application and
the provider's approval, not-shared data (不予共享) never.
"""

from __future__ import annotations

from typing import Annotated

import typer

from exchange import beijing
from exchange.cli.common import (
    AsOption,
    BootstrapOption,
    KeyOption,
    connection,
    fail,
    guarded,
    print_json,
    run,
    signing_key,
    table,
)
from exchange.clients.department import Department
from exchange.control import state
from exchange.sharing.policy import View
from exchange.sharing.records import Application, now
from exchange.sharing.stages import Stage


def _print_view(view: View) -> None:
    if view.denied:
        typer.echo(f"DENIED: {view.not_receiving()}")
    else:
        typer.echo(f"entitled to (可获取的字段): {', '.join(view.fields)}")
        if view.receiving:
            typer.echo(f"delivered (已接收) to {view.topic}: {', '.join(view.delivered)}")
        else:
            typer.echo(f"delivered (已接收): nothing yet: {view.not_receiving()}")
        for f, m in view.masks.items():
            typer.echo(f"  mask {f} = {m}")
        if view.row_filter:
            typer.echo(f"row filter (CEL): {view.row_filter}")
        if view.grant_id:
            until = beijing.shown(view.valid_until) if view.valid_until else "no expiry"
            typer.echo(f"grant: {view.grant_id} (purpose: {view.purpose}; until: {until})")
    for f, why in view.excluded.items():
        typer.echo(f"  left out {f}: {why}")


def subscribe(
    resource: Annotated[str, typer.Argument(help="Resource id.")],
    department: AsOption,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Subscribe to a resource; the router then delivers your view to gov.dlv.<dept>.<resource>.

    Denied, with the rule, if the resource is wholly not shared (不予共享) or
    no field is left for you.
    """
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> View:
        async with Department(bus, department, signing_key=signing_key(key)) as d:
            return await d.subscribe(resource)

    view = run(go())
    typer.echo(f"subscribed {department} to {resource}")
    _print_view(view)


def explain(
    resource: Annotated[str, typer.Argument(help="Resource id.")],
    department: AsOption,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what you are entitled to of a resource and whether it is delivered to you.

    Entitled (fields, masks, row filter, grant, expiry) is what the router would
    deliver; nothing is delivered until you subscribe ('exchange subscribe') or a
    provider approves your application. Each field left out is listed with the reason.
    """
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> View:
        async with Department(bus, department, signing_key=signing_key(key)) as d:
            return d.explain(resource)

    view = run(go())
    if as_json:
        print_json(view.to_json())
    else:
        _print_view(view)


def apply(
    resource: Annotated[str, typer.Argument(help="Resource id.")],
    department: AsOption,
    fields: Annotated[str, typer.Option(help="Conditional fields wanted, comma-separated.")],
    purpose: Annotated[str, typer.Option(help="What the data is for (用途).")],
    legal_basis: Annotated[str | None, typer.Option(help="Legal basis of the request.")] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="For verification only (核验): ask whether a record matches values of these "
            "fields through 'exchange gateway', receive none of them.",
        ),
    ] = False,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Apply for conditional fields (有条件共享); prints the application id.

    The provider must answer within 10 working days ('exchange applications'
    marks those that are not as overdue).
    """
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> str:
        async with Department(bus, department, signing_key=signing_key(key)) as d:
            return await d.apply(
                resource,
                fields=[f.strip() for f in fields.split(",") if f.strip()],
                purpose=purpose,
                legal_basis=legal_basis,
                verify=verify,
            )

    typer.echo(run(go()))


STATUSES = ("pending", "approved", "rejected", "returned", "ordered", "overdue")


def applications(
    department: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Only applications by or to this department (the data-sharing authority: "
            "every application).",
        ),
    ] = None,
    status: Annotated[str | None, typer.Option(help=" | ".join(STATUSES))] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            help="Only applications at this stage: "
            + " | ".join(s.value for s in Stage)
            + " (the authority's inbox: --stage review).",
        ),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List applications, newest first; overdue = a stage past its time limit.

    Each shows its stage (review, answer, negotiation, escalated, or an outcome)
    and the due date of the stage under way, in working days on the official
    calendar; 'exchange application APP-...' shows its whole path.
    """
    if status not in (None, *STATUSES):
        raise fail(f"--status {status!r}: use {', '.join(STATUSES)}")
    if stage is not None and stage not in {s.value for s in Stage}:
        raise fail(f"--stage {stage!r}: use {', '.join(s.value for s in Stage)}")
    bus = guarded(connection)(bootstrap_servers)

    async def listing() -> list[dict[str, str]]:
        s = await state.load(bus)
        t = now()
        bureau = s.catalog.authority()
        sees_all = bureau is not None and department == bureau.id
        out = []
        for app in sorted(s.book.applications.values(), key=lambda a: a.applied_at, reverse=True):
            res = s.catalog.resources.get(app.resource)
            provider = res.provider if res else "?"
            if department and not sees_all and department not in (app.consumer, provider):
                continue
            late = app.overdue_stage(t)
            if status == "overdue" and late is None:
                continue
            if status and status != "overdue" and app.status.value != status:
                continue
            if stage and app.stage.value != stage:
                continue
            out.append(_row(app, provider, late is not None or app.overdue(t)))
        return out

    rows = run(listing())
    if as_json:
        print_json(rows)
        return
    keys = ["id", "consumer", "resource", "fields", "applied_at", "stage", "due", "status"]
    typer.echo(table([[r[k] for k in keys] for r in rows], keys))


def _row(app: Application, provider: str, overdue: bool) -> dict[str, str]:
    last = app.steps[-1] if app.steps else None
    return {
        "id": app.id,
        "consumer": app.consumer,
        "resource": app.resource,
        "provider": provider,
        "fields": ",".join(app.fields),
        "purpose": app.purpose,
        "applied_at": beijing.shown(app.applied_at),
        "stage": app.stage.value,
        "due": app.due().isoformat(),
        "status": app.status.value + (" (overdue)" if overdue else ""),
        "grant_id": app.grant_id or "",
        "reason": app.reason or "",
        "last_step": f"{last.name} by {last.actor} {beijing.shown(last.at)}" if last else "",
        "last_reason": (last.reason or "") if last else "",
    }

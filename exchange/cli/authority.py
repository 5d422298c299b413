"""``exchange review | contest | negotiate | escalate | decide | appeal | application``.

The data-sharing authority's workflow.

The authority (政务数据共享主管部门, the department marked ``data_authority``
in the catalog) reviews applications for compliance (符合性审查) and decides
disputes over refusals (共享争议); the consumer contests a refusal, both
sides negotiate and may escalate; the provider may appeal an order. Each
command is signed with ``--key`` when the catalog registers the
department's key, checked, written to ``gov.ctl.grants`` and audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

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
from exchange.enforce.mask_rules import KNOWN_RULES
from exchange.sharing.records import Application, now

AppArgument = Annotated[str, typer.Argument(help="Application id (APP-...).")]
ReasonOption = Annotated[str, typer.Option(help="Why (required; every party sees it).")]


def _act(
    department: str,
    key: Any,
    bootstrap_servers: str | None,
    act: Callable[[Department], Awaitable[str]],
) -> str:
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> str:
        async with Department(bus, department, signing_key=signing_key(key)) as d:
            return await act(d)

    return run(go())


def review(
    application_id: AppArgument,
    department: AsOption,
    passed: Annotated[
        bool | None,
        typer.Option(
            "--pass/--return",
            help="--pass: compliant, forwarded to the provider (unconditional data: authorised "
            "at once, the subscription is made); --return: sent back to the applicant with "
            "--reason (purpose missing, fields beyond the stated duty, legal basis absent).",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required with --return).")] = None,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Review an application for compliance (符合性审查; the data-sharing authority only).

    The authority's inbox: 'exchange applications --as DEPT --stage review'.
    """
    if passed is None:
        raise fail("say --pass or --return")
    if not passed and not reason:
        raise fail("--return needs --reason (the applicant sees it)")
    stage = _act(
        department,
        key,
        bootstrap_servers,
        lambda d: d.review(application_id, passed=passed, reason=reason),
    )
    typer.echo(f"{application_id}: {stage}")


def contest(
    application_id: AppArgument,
    department: AsOption,
    reason: Annotated[
        str, typer.Option(help="Why the data is still needed for your duties (required).")
    ],
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Contest the rejection of your application (共享争议); negotiation with the provider opens.

    Then 'exchange negotiate' (either side) and, if that fails, 'exchange
    escalate' to the data-sharing authority, which decides ('exchange decide').
    """
    stage = _act(
        department, key, bootstrap_servers, lambda d: d.contest(application_id, reason=reason)
    )
    typer.echo(f"{application_id}: {stage}")


def negotiate(
    application_id: AppArgument,
    department: AsOption,
    message: Annotated[str, typer.Option(help="Your message to the other side (recorded).")],
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Send a negotiation message (协商; consumer or provider), recorded on the path."""
    stage = _act(
        department, key, bootstrap_servers, lambda d: d.negotiate(application_id, message=message)
    )
    typer.echo(f"{application_id}: {stage}")


def escalate(
    application_id: AppArgument,
    department: AsOption,
    reason: ReasonOption,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Escalate a contested refusal to the data-sharing authority (consumer or provider)."""
    stage = _act(
        department, key, bootstrap_servers, lambda d: d.escalate(application_id, reason=reason)
    )
    typer.echo(f"{application_id}: {stage}")


MASK_HELP = "Mask a field: FIELD=RULE, repeatable. Rules: " + "; ".join(
    f"{k}: {v}" for k, v in KNOWN_RULES.items()
)


def _masks(mask: list[str] | None) -> dict[str, str]:
    masks = {}
    for m in mask or []:
        name, sep, rule = m.partition("=")
        if not sep or not name or not rule:
            raise fail(f"--mask {m!r}: write FIELD=RULE, e.g. mother_id_number=keep:6:4")
        masks[name.strip()] = rule.strip()
    return masks


def decide(
    application_id: AppArgument,
    department: AsOption,
    reason: ReasonOption,
    uphold: Annotated[
        bool | None,
        typer.Option(
            "--uphold/--order",
            help="--uphold: the refusal stands; --order: the provider must share (责令共享) "
            "under the terms below, as a grant the router delivers.",
            show_default=False,
        ),
    ] = None,
    fields: Annotated[
        str | None, typer.Option(help="--order: these fields only (default: those applied for).")
    ] = None,
    row_filter: Annotated[str | None, typer.Option("--filter", help="CEL row filter.")] = None,
    mask: Annotated[list[str] | None, typer.Option(help=MASK_HELP)] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Expiry: YYYY-MM-DD (end of day, Beijing) or ISO time with its zone."),
    ] = None,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Decide an escalated refusal (协调决定; the data-sharing authority only).

    An order is refused for any not-shared field (不予共享): only a signed
    catalog load can change a field's share type. Prints the grant id of an order.
    """
    if uphold is None:
        raise fail("say --uphold or --order")
    if uphold:
        stage = _act(
            department, key, bootstrap_servers, lambda d: d.uphold(application_id, reason=reason)
        )
        typer.echo(f"{application_id}: {stage}")
        return
    expiry = None
    if until is not None:
        try:
            expiry = beijing.expiry(until)
        except beijing.ExpiryError as exc:
            raise fail(f"--until: {exc}") from None
    wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    masks = _masks(mask)
    typer.echo(
        _act(
            department,
            key,
            bootstrap_servers,
            lambda d: d.order(
                application_id,
                reason=reason,
                fields=wanted,
                row_filter=row_filter,
                masks=masks,
                until=expiry,
            ),
        )
    )


def appeal(
    application_id: AppArgument,
    department: AsOption,
    reason: ReasonOption,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Appeal the authority's order (the provider only); recorded, the grant stands."""
    stage = _act(
        department, key, bootstrap_servers, lambda d: d.appeal(application_id, reason=reason)
    )
    typer.echo(f"{application_id}: {stage}")


def path_rows(app: Application) -> list[list[str]]:
    """The path of ``app`` as table rows: when, step, who, outcome, reason."""
    return [
        [beijing.shown(s.at), s.name, s.actor, s.outcome, s.to.value, s.reason or ""]
        for s in app.steps
    ]


def application(
    application_id: AppArgument,
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the whole path of one application, with dates, actors, reasons and due dates.

    applied → reviewed → answered → contested → negotiated → escalated → decided
    (→ appealed), and the stages it went through, each with its time limit in
    working days, its due date and whether it was (or is) overdue.
    """
    from exchange.control import state

    bus = guarded(connection)(bootstrap_servers)
    s = run(state.load(bus))
    app = s.book.applications.get(application_id)
    if app is None:
        raise fail(f"unknown application {application_id!r}")
    t = now()
    stages = [
        {
            "stage": w.stage.value,
            "started": beijing.iso(w.start),
            "ended": beijing.iso(w.end) if w.end else "",
            "time_limit": w.limit or "",
            "due": w.due.isoformat() if w.due else "",
            "overdue": w.overdue(t),
        }
        for w in app.windows()
    ]
    if as_json:
        print_json(
            {
                "id": app.id,
                "consumer": app.consumer,
                "resource": app.resource,
                "status": app.status.value,
                "stage": app.stage.value,
                "grant_id": app.grant_id,
                "time_limits": app.limits,
                "path": app.path(),
                "stages": stages,
            }
        )
        return
    typer.echo(
        f"{app.id}: {app.consumer} → {app.resource} ({', '.join(app.fields)}); "
        f"stage {app.stage.value} ({app.stage.zh}), status {app.status.value}"
        + (f", grant {app.grant_id}" if app.grant_id else "")
    )
    typer.echo(table(path_rows(app), ["at", "step", "actor", "outcome", "stage", "reason"]))
    typer.echo("")
    keys = ["stage", "started", "ended", "time_limit", "due", "overdue"]
    rows = [
        [
            w.stage.value,
            beijing.shown(w.start),
            beijing.shown(w.end) if w.end else "",
            str(w.limit or ""),
            w.due.isoformat() if w.due else "",
            "overdue" if w.overdue(t) else "",
        ]
        for w in app.windows()
    ]
    typer.echo(table(rows, keys))

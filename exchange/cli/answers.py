"""``exchange approve | reject | revoke``: a provider's answers, and ``exchange agent``.

Each command hands its arguments to the department's agent when one runs
(:mod:`exchange.agent`: a warm session, so a revocation is on the bus in a
fraction of a second) and otherwise starts a session of its own. Either way
the same checks run and the same audit entries are written. Nothing heavy is
imported at the top of this module: a forwarded command costs no Kafka import.
``EXCHANGE_NO_AGENT=1`` makes a command ignore a running agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.agent import client as agent_client
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
from exchange.enforce.mask_rules import KNOWN_RULES

MASK_HELP = "Mask a field: FIELD=RULE, repeatable. Rules: " + "; ".join(
    f"{k}: {v}" for k, v in KNOWN_RULES.items()
)


def _answer(
    department: str,
    op: str,
    args: dict[str, Any],
    bootstrap_servers: str | None,
    key: Path | None,
) -> str:
    """Run ``op`` through the department's agent if one runs, else in a session of its own."""
    try:
        reply = agent_client.forward(department, op, args, bootstrap=bootstrap_servers, key=key)
    except agent_client.AgentSilent as exc:
        msg = f"{exc}; check 'exchange grants' or 'exchange applications' before retrying"
        raise fail(msg) from None
    if reply is not None:
        if not reply.ok:
            raise fail(reply.error)
        return reply.result
    from exchange.agent.server import Agent  # the same dispatch, in this process

    bus = guarded(connection)(bootstrap_servers)

    async def go() -> str:
        agent = Agent(bus, department, signing_key=signing_key(key), key_path=key)
        try:
            return await agent.run_op(op, args)
        finally:
            await agent.close()

    return run(go())


def _parse_until(until: str | None) -> str | None:
    """``--until`` by the rule of the API too (:data:`exchange.beijing.EXPIRY_RULE`)."""
    if until is None:
        return None
    from exchange import beijing

    try:
        return beijing.expiry(until).isoformat()
    except beijing.ExpiryError as exc:
        raise fail(f"--until: {exc}") from None


def approve(
    application_id: Annotated[str, typer.Argument(help="Application id (APP-...).")],
    department: AsOption,
    fields: Annotated[
        str | None, typer.Option(help="Grant only these fields (narrowing the application).")
    ] = None,
    row_filter: Annotated[
        str | None,
        typer.Option("--filter", help="CEL row filter, e.g. 'region_code.startsWith(\"3301\")'."),
    ] = None,
    mask: Annotated[list[str] | None, typer.Option(help=MASK_HELP)] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Expiry of the grant: a date, YYYY-MM-DD (valid through the end of that day, "
            "Beijing time), or an ISO timestamp with its zone, e.g. 2026-12-31T18:00+08:00. "
            "A time without a zone is refused. Default: no expiry.",
            show_default=False,
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Grant verification only (核验), even if the application asked for data. "
            "Default: what the application asked for.",
        ),
    ] = False,
    quota_per_second: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="At most N requests by key per second (接口调用)."),
    ] = None,
    quota_per_day: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="At most N requests by key per day (Beijing time)."),
    ] = None,
    at_rest: Annotated[
        str | None,
        typer.Option(
            "--at-rest",
            metavar="RULE",
            help="What the consumer does with the rows it holds once the grant is revoked or "
            "expires: 'delete' them (the default: 使用完毕 data disposal) or 'keep-frozen' (kept, "
            "no longer updated, marked as retracted). The database sink applies it.",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Approve an application (provider only); prints the grant id."""
    if at_rest is not None and at_rest not in ("delete", "keep-frozen"):
        raise fail(f"--at-rest {at_rest!r}: write delete or keep-frozen")
    masks = {}
    for m in mask or []:
        name, sep, rule = m.partition("=")
        if not sep or not name or not rule:
            raise fail(f"--mask {m!r}: write FIELD=RULE, e.g. mother_id_number=keep:6:4")
        masks[name.strip()] = rule.strip()
    args = {
        "application_id": application_id,
        "fields": [f.strip() for f in fields.split(",") if f.strip()] if fields else None,
        "row_filter": row_filter,
        "masks": masks,
        "until": _parse_until(until),
        "verify": True if verify else None,
        "quota_per_second": quota_per_second,
        "quota_per_day": quota_per_day,
        "at_rest": at_rest,
    }
    typer.echo(_answer(department, "approve", args, bootstrap_servers, key))


def reject(
    application_id: Annotated[str, typer.Argument(help="Application id (APP-...).")],
    department: AsOption,
    reason: Annotated[str, typer.Option(help="Why (required; the applicant sees it).")],
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Reject an application (provider only), with a reason."""
    args = {"application_id": application_id, "reason": reason}
    typer.echo(_answer(department, "reject", args, bootstrap_servers, key))


def revoke(
    grant_id: Annotated[str, typer.Argument(help="Grant id (GR-...).")],
    department: AsOption,
    reason: Annotated[str, typer.Option(help="Why (required).")],
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Revoke a grant (provider only); deliveries under it stop at once."""
    args = {"grant_id": grant_id, "reason": reason}
    typer.echo(_answer(department, "revoke", args, bootstrap_servers, key))


def agent(
    department: AsOption,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Keep a department's session open so its approve, reject and revoke take milliseconds.

    Listens on a Unix socket in the state directory (only for this user) until
    stopped (Ctrl-C or SIGTERM). While it runs, 'exchange approve | reject |
    revoke --as DEPT' hand their arguments to it: same checks, same audit
    entries, no Kafka start-up per command. It holds the signing key given
    here; a command given another key or another bus runs on its own.
    """
    from exchange.agent.server import Agent

    bus = guarded(connection)(bootstrap_servers)
    server = Agent(bus, department, signing_key=signing_key(key), key_path=key)

    def ready(path: Path) -> None:
        typer.echo(f"agent of {department} on {bus.bootstrap}: listening at {path}", err=True)

    run(server.serve(ready))
    typer.echo(f"agent of {department} stopped", err=True)

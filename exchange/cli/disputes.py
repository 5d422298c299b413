"""``exchange dispute | disputes | answer-dispute``: data disputes and corrections (疑义校核).

A department that doubts data it received disputes fields of one record (by
its ``gov-record-id``, never by a value); the provider finds it in its inbox,
answers within the working days the bus allows (5 by default,
``EXCHANGE_DISPUTE_ANSWER_WORKING_DAYS``), and publishes the corrected record
with ``exchange publish --corrects DISPUTE-ID``, which closes the dispute.
"""

from __future__ import annotations

from typing import Annotated

import typer

from exchange.cli.common import (
    AsOption,
    BootstrapOption,
    KeyOption,
    connection,
    fail,
    guarded,
    print_json,
    run,
    settings,
    signing_key,
    table,
)
from exchange.clients.department import Department
from exchange.sharing.dispute_records import Dispute
from exchange.sharing.records import now

STATUSES = ("open", "answered", "overdue")


def _session(department: str, key: KeyOption, bootstrap_servers: str | None) -> Department:
    bus = guarded(connection)(bootstrap_servers)
    return Department(
        bus,
        department,
        signing_key=signing_key(key),
        dispute_answer_within=settings().dispute_answer_working_days,
    )


def dispute(
    resource: Annotated[str, typer.Argument(help="Resource id of the record.")],
    record_id: Annotated[
        str,
        typer.Argument(
            help="The record's id (its gov-record-id header): 'exchange consume' shows it as id=."
        ),
    ],
    department: AsOption,
    fields: Annotated[
        list[str],
        typer.Option("--field", help="A field you doubt (repeat for several); names, not values."),
    ],
    reason: Annotated[
        str,
        typer.Option(help="What is doubted or wrong (疑义说明). Describe it; do not quote values."),
    ],
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Dispute fields of a record you received (疑义); prints the dispute id.

    Only a record delivered to your department (found on
    gov.dlv.<dept>.<resource>) may be disputed, and only fields you received of
    it: anything else is refused, naming the record, field and department. The
    provider must answer within EXCHANGE_DISPUTE_ANSWER_WORKING_DAYS working days
    (5 by default) on the official calendar.
    """

    async def go() -> str:
        async with _session(department, key, bootstrap_servers) as d:
            return await d.dispute(resource, record_id, fields=fields, reason=reason)

    typer.echo(run(go()))


def disputes(
    department: AsOption,
    status: Annotated[
        str | None, typer.Option(help="open | answered | overdue (open past its due day).")
    ] = None,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List disputes you opened or about your resources (a provider's inbox), newest first."""
    if status is not None and status not in STATUSES:
        raise fail(f"--status {status!r}: use open, answered or overdue")

    async def go() -> list[Dispute]:
        async with _session(department, key, bootstrap_servers) as d:
            return await d.disputes(status=status)

    at = now()
    rows = [d.to_json(at) for d in run(go())]
    if as_json:
        print_json(rows)
        return
    keys = ["id", "consumer", "resource", "record_id", "fields", "opened_at", "due", "status"]
    typer.echo(table([[r[k] for k in keys] for r in rows], keys))


def answer_dispute(
    dispute_id: Annotated[str, typer.Argument(help="The dispute (DS-YYYYMMDD-xxxxxxxx).")],
    department: AsOption,
    reason: Annotated[str, typer.Option(help="What the check found (校核结果).")],
    corrected: Annotated[
        bool,
        typer.Option(
            "--corrected",
            help="The data was wrong: publish the corrected record with "
            "'exchange publish --corrects DISPUTE-ID' to close the dispute.",
        ),
    ] = False,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="The data is right as it is; the dispute closes.")
    ] = False,
    key: KeyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Answer a dispute about one of your resources (provider only): --corrected or --confirmed."""
    if corrected == confirmed:
        raise fail("answer with exactly one of --corrected and --confirmed")

    async def go() -> Dispute:
        async with _session(department, key, bootstrap_servers) as d:
            return await d.answer_dispute(dispute_id, corrected=corrected, reason=reason)

    done = run(go())
    typer.echo(f"{done.id}: {done.shown_status(now())} (due {done.due().isoformat()})")

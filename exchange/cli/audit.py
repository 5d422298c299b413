"""``exchange audit verify | query | archive | report``: the access log, for auditors."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import signal
from pathlib import Path
from typing import Annotated

import typer

from exchange import workdays
from exchange.admin.acls import AUDITOR
from exchange.audit import archive_url as archive_db
from exchange.audit import query as q
from exchange.audit import report as rpt
from exchange.audit import retention, truncation
from exchange.audit import trace as tr
from exchange.audit.archiver import Archiver
from exchange.audit.entry import AuditEntry
from exchange.audit.finding import Finding
from exchange.audit.key_hash import KeyHasher
from exchange.audit.log import entries_only, read_log
from exchange.audit.verify import VerifyReport, verify
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.cli.common import (
    BootstrapOption,
    connection,
    fail,
    guarded,
    print_json,
    run,
    settings,
    table,
)
from exchange.cli.serving import (
    ClientLogLevelOption,
    LogLevelOption,
    MetricsHostOption,
    MetricsPortOption,
    serve_metrics,
    setup_logging,
)
from exchange.control import catalog_store
from exchange.errors import ExchangeError
from exchange.metrics import AuditMetrics
from exchange.sharing.records import now
from exchange.tables import fitted

app = typer.Typer(
    help="The access log (gov.audit): verify its hash chains, query it, archive it, report on it.",
    no_args_is_help=True,
)

TopicOption = Annotated[
    str,
    typer.Option(
        help="The audit topic to read (another one to check a mirrored or exported copy)."
    ),
]
ArchiveOption = Annotated[
    str | None,
    typer.Option(
        "--archive",
        help="Read an archive instead of the topic: a SQLite file, sqlite:///PATH or "
        "postgresql://... (see 'exchange audit archive').",
    ),
]


def _print_verify(report: VerifyReport) -> None:
    heads = {h.writer: h for h in report.heads or []}
    rows = []
    for w in report.writers:
        h = heads.get(w.writer)
        signed = "-" if h is None else (h.service or "UNSIGNED")
        tail = "-" if h is None else str(h.unsigned_tail)
        rows.append(
            [
                w.writer,
                str(w.entries),
                f"{w.first_seq}-{w.last_seq}",
                str(w.duplicates),
                signed,
                tail,
                "BROKEN" if w.problems else "ok",
            ]
        )
    headers = ["writer", "entries", "seqs", "duplicates", "signed by", "unsigned tail", "chain"]
    typer.echo(table(rows, headers))
    for f in report.findings:
        where = f" [{f.writer}]" if f.writer else ""
        typer.echo(f"{f.kind.value.upper()}{where}: {f.message}")
    if report.broken:
        typer.secho(
            f"BROKEN: {len(report.problems)} problem(s) in {report.entries} entries of "
            f"{len(report.writers)} writer(s)",
            fg=typer.colors.RED,
        )
    else:
        typer.echo(f"intact: {report.entries} entries of {len(report.writers)} writer(s)")


CatalogDirOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="Catalog directory whose services.yaml holds the keys of the services that sign "
        "chain heads. Default: the catalog in force on the bus.",
        show_default=False,
    ),
]


@app.command("verify")
def verify_cmd(
    bootstrap_servers: BootstrapOption = None,
    archive: ArchiveOption = None,
    archive_only: Annotated[
        bool,
        typer.Option(
            "--archive-only",
            help="With --archive: check the archive alone, without comparing it with the topic.",
        ),
    ] = False,
    catalog_dir: CatalogDirOption = None,
    topic: TopicOption = topics.AUDIT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every writer's hash chain and signed heads; exit code 1 if broken, 0 if intact.

    Reports, per writer, every entry modified, inserted, deleted or reordered,
    with its position (topic offset and the writer's seq); a chain with no
    validly signed head (forged: written by no registered service), a bad
    signature, a head that goes backwards or no longer matches its entry; and
    the unsigned tail (entries not covered by a signed head yet, a notice).

    With --archive URL: the archive's chains are checked, and compared with the
    topic: entries (and signed heads) the archive holds and the topic no longer
    does are reported as truncated (deleted), unless older than the topic's retention.
    """
    keys = _head_keys(
        bootstrap_servers,
        catalog_dir,
        offline=archive is not None and archive_only,
        quiet=as_json,
    )
    if archive is not None:
        report = guarded(_verify_archive)(archive, keys)
        if not archive_only:
            bus = guarded(connection)(bootstrap_servers)
            report.findings.extend(run(_compare_with_topic(bus, topic, archive)))
    else:
        report = run(_read_and_verify(guarded(connection)(bootstrap_servers), topic, keys))
    if as_json:
        print_json(report.to_json())
    else:
        _print_verify(report)
    if report.broken:
        raise typer.Exit(1)


def _head_keys(
    bootstrap_servers: str | None, catalog_dir: Path | None, *, offline: bool, quiet: bool
) -> dict[str, str] | None:
    """The service keys heads are checked with (None: no catalog to take them from)."""
    keys: dict[str, str] | None = None
    if catalog_dir is not None:
        keys = guarded(load_catalog)(catalog_dir).head_keys()
    elif not offline:
        in_force = run(catalog_store.current(guarded(connection)(bootstrap_servers)))
        keys = in_force.catalog.head_keys() if in_force is not None else None
    if not keys:  # an old bus: nothing can be proven, and every chain would be unsigned
        if quiet:  # JSON: "heads": null says it
            return None
        typer.secho(
            "note: the catalog registers no service identity (services.yaml): chain heads are "
            "not checked, so a truncated tail or a forged chain cannot be told",
            fg=typer.colors.YELLOW,
            err=True,
        )
        return None
    return keys


def _verify_archive(url: str, keys: dict[str, str] | None) -> VerifyReport:
    with archive_db.open_archive(url, setup=False) as db:
        return verify(db.log(), keys=keys, anchors=retention.anchors(db))


async def _compare_with_topic(bus: Connection, topic: str, url: str) -> list[Finding]:
    items = await read_log(bus, topic)
    retention = bus.topics.audit_retention_ms
    since = None if retention < 0 else now() - dt.timedelta(milliseconds=retention)

    def against_archive() -> list[Finding]:
        with archive_db.open_archive(url, setup=False) as db:
            return truncation.compare(items, db.log(), since=since)

    return await asyncio.to_thread(against_archive)


async def _read_and_verify(
    bus: Connection, topic: str, keys: dict[str, str] | None
) -> VerifyReport:
    return verify(await read_log(bus, topic), keys=keys)


@app.command("query")
def query_cmd(
    bootstrap_servers: BootstrapOption = None,
    dept: Annotated[
        str | None, typer.Option(help="Department as actor, consumer or provider.")
    ] = None,
    resource: Annotated[str | None, typer.Option(help="Resource id.")] = None,
    action: Annotated[
        str | None,
        typer.Option(help="RECORDS_DELIVERED, COMMAND_REFUSED, ... (README: Audit actions)."),
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option(
            help="granted, denied, delivered, approved, rejected, revoked, expired, ...; "
            "'denied' finds every refusal, whatever the action."
        ),
    ] = None,
    grant: Annotated[str | None, typer.Option(help="Grant id (GR-...).")] = None,
    purpose: Annotated[str | None, typer.Option(help="Text the purpose contains.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date or time (Beijing time if no zone).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this date (inclusive) or time (exclusive).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json | csv")] = "table",
    limit: Annotated[int, typer.Option(min=1, help="Entries per page.")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="Entries to skip (paging).")] = 0,
    archive: ArchiveOption = None,
    topic: TopicOption = topics.AUDIT,
) -> None:
    """Audit entries matching every filter given, newest first.

    The table fits the terminal's width (100 columns when it is not a terminal;
    COLUMNS overrides): the details wrap, at most three lines an entry.
    --format json or csv gives every field of every entry in full.
    """
    if fmt not in q.FORMATS:
        raise fail(f"--format {fmt!r}: use {', '.join(q.FORMATS)}")
    try:
        flt = q.Filter(
            dept=dept,
            resource=resource,
            action=q.parse_action(action),
            decision=q.parse_decision(decision),
            grant=grant,
            purpose=purpose,
            since=q.parse_time(since),
            until=q.parse_time(until, end=True),
        )
    except ExchangeError as exc:
        raise fail(str(exc)) from None
    if archive is not None:

        def from_archive() -> list[AuditEntry]:
            with archive_db.open_archive(archive, setup=False) as db:
                return [e for _, e in db.query(flt, limit=limit, offset=offset)]

        entries = guarded(from_archive)()
    else:
        items = entries_only(run(read_log(connection(bootstrap_servers), topic)))
        entries = q.select(items, flt, limit=limit, offset=offset)
    if fmt == "table":
        headers, rows = q.table_rows(entries)
        typer.echo(fitted(rows, headers, shutil.get_terminal_size((100, 24)).columns))
        typer.echo(f"{len(entries)} entries (offset {offset}, limit {limit})", err=True)
    else:
        typer.echo(q.render(entries, fmt))


@app.command("archive")
def archive_cmd(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="SQLite file, sqlite:///PATH, or postgresql://USER@HOST/DB (created)."
        ),
    ] = "audit.sqlite",
    follow: Annotated[
        bool, typer.Option("--follow/--once", help="Keep following, or stop when caught up.")
    ] = True,
    bootstrap_servers: BootstrapOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = None,
    log_level: LogLevelOption = None,
    client_log_level: ClientLogLevelOption = None,
    prune_before: Annotated[
        str | None,
        typer.Option(
            "--prune-before",
            help="Instead of archiving: drop the months before this one (YYYY-MM, Beijing "
            "time). Refused unless they are older than EXCHANGE_AUDIT_RETENTION_MONTHS, the "
            "archive verifies and every entry dropped is covered by a signed head.",
            show_default=False,
        ),
    ] = None,
    catalog_dir: CatalogDirOption = None,
) -> None:
    """Copy gov.audit into a database (SQLite or PostgreSQL), idempotently.

    A restart resumes at the offset stored with the entries and never
    duplicates one. Chains are checked on the way (metric
    audit_verification_failures); 'exchange audit verify --archive' checks fully.
    The archive is kept by month; --prune-before YYYY-MM drops old months (see
    README: Retention).
    """
    if prune_before is not None:
        _prune(to, prune_before, bootstrap_servers, catalog_dir)
        return
    setup_logging(log_level, client_log_level)
    bus = guarded(connection)(bootstrap_servers)
    metrics = AuditMetrics()
    serve_metrics(metrics.registry, metrics_port, metrics_host)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        db = await asyncio.to_thread(archive_db.open_archive, to)
        try:
            if follow:
                typer.echo(f"archiving gov.audit from {bus} into {to}; Ctrl-C stops")
            done = await Archiver(bus, db, metrics=metrics).run(follow=follow, stop=stop)
            total = await asyncio.to_thread(db.count)
        finally:
            db.close()
        typer.echo(
            f"read {done.read} records, archived {done.added} new entries; {total} entries in {to}"
        )

    run(go())


@app.command("report")
def report_cmd(
    period: Annotated[str, typer.Option(help="Month, YYYY-MM (Beijing time).")],
    dept: Annotated[str | None, typer.Option(help="Only this department.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    bootstrap_servers: BootstrapOption = None,
    archive: ArchiveOption = None,
    catalog_dir: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            help="Catalog directory whose holiday calendar (calendar/<year>.yaml) to count "
            "working days with. Default: the catalog in force on the bus (with --archive: "
            "the chinesecalendar package only).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The monthly report per department, from the access log.

    Records received per resource and purpose, denials by reason, grants
    active (at the end of the month, or now) and revoked/expired during it
    (up to now), applications answered within or beyond 10
    working days (official calendar, make-up working days included; an
    application's own answer limit when workflow.yaml set one), the
    authority's workflow (applications reviewed in time or not and returned,
    disputes contested and escalated, the authority's decisions, orders
    appealed), and
    every deadline computed without holiday data for its year
    (deadline_without_calendar_data, one row per application). Names that are
    not departments of the catalog (a refused '--as nobody') are listed in a
    section of their own (column section: 'unknown actor').
    """
    try:
        month = rpt.Period.parse(period)
    except ExchangeError as exc:
        raise fail(str(exc)) from None
    if fmt not in ("table", "csv", "json"):
        raise fail(f"--format {fmt!r}: use table, csv or json")
    entries, departments = _report_inputs(month, catalog_dir, archive, bootstrap_servers)
    if departments is None:
        typer.secho(
            "warning: no catalog to tell departments from unknown actors (give --catalog): "
            "every name in the log is listed as a department",
            fg=typer.colors.YELLOW,
            err=True,
        )
    reports = rpt.monthly(entries, month, department=dept, at=now(), departments=departments)
    blind = sum(len(r.without_calendar) for r in reports)
    if blind:
        typer.secho(
            f"warning: {blind} deadline(s) computed without official holiday data "
            "(rows deadline_without_calendar_data): add the year's calendar file to the catalog",
            fg=typer.colors.YELLOW,
            err=True,
        )
    _print_report(reports, month, fmt)


def _report_inputs(
    month: rpt.Period,
    catalog_dir: Path | None,
    archive: str | None,
    bootstrap_servers: str | None,
) -> tuple[list[AuditEntry], set[str] | None]:
    """The month's entries (from the archive or the bus) and the catalog's departments (None:
    no catalog to tell them from unknown actors); sets the holiday calendar to count with."""
    departments: set[str] | None = None
    if catalog_dir is not None:
        given = guarded(load_catalog)(catalog_dir)
        workdays.use(workdays.Calendar(given.calendar))
        departments = set(given.departments)
    if archive is not None:

        def from_archive() -> list[AuditEntry]:
            with archive_db.open_archive(archive, setup=False) as db:
                return [e for _, e in db.query(q.Filter(until=month.end))]

        return guarded(from_archive)(), departments
    bus = guarded(connection)(bootstrap_servers)
    entries = [e for _, e in entries_only(run(read_log(bus)))]
    in_force = run(catalog_store.current(bus)) if catalog_dir is None else None
    if in_force is not None:
        workdays.use(workdays.Calendar(in_force.catalog.calendar))
        departments = set(in_force.catalog.departments)
    return entries, departments


def _print_report(reports: list[rpt.DepartmentReport], month: rpt.Period, fmt: str) -> None:
    if fmt == "csv":
        typer.echo(rpt.to_csv(reports, month))
    elif fmt == "json":
        data = [dict(zip(rpt.HEADERS, r, strict=True)) for r in rpt.to_rows(reports)]
        typer.echo(json.dumps({"period": str(month), "rows": data}, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"access report {month} (Beijing time)\n")
        rows = rpt.to_rows(reports)
        nonzero = [r[:-1] for r in rows if r[-2] != "0" and r[-1] == rpt.DEPARTMENT]
        typer.echo(table(nonzero, rpt.HEADERS[:-1]))
        unknown = [r[:-1] for r in rows if r[-1] == rpt.UNKNOWN_ACTOR]
        if unknown:
            typer.echo("\nunknown actors (names that are not departments of the catalog)\n")
            typer.echo(table(unknown, ["actor", *rpt.HEADERS[1:-1]]))
        typer.echo("\n(metrics at 0 are left out; --format csv lists every one)")


@app.command("trace")
def trace_cmd(
    resource: Annotated[str, typer.Option(help="Resource id.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The record key (e.g. an ID number) whose deliveries to list; auditor only. "
            "Hashed here with EXCHANGE_AUDIT_TRACE_KEY, never sent or printed.",
        ),
    ] = None,
    as_dept: Annotated[
        str | None,
        typer.Option("--as", help="A department: list what it received of the resource, and why."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    bootstrap_servers: BootstrapOption = None,
    archive: ArchiveOption = None,
    topic: TopicOption = topics.AUDIT,
) -> None:
    """Who received the records about X: every delivery of a key, or a department's receipts.

    --key VALUE (the auditor): every delivery of a record of the resource with that
    key: consumer, grant, purpose, fields, masks, time, delivery topic and the
    record's source partition:offset (its delivered copy carries them in the
    gov-source-offset header). The data is never read: delivery entries carry keyed
    hashes of the keys. --as DEPT: what DEPT received of the resource, under which
    grant and purpose. On a bus with users, --key needs the auditor user and --as
    DEPT the user DEPT (or the auditor). --archive answers from the archive's index.
    """
    if fmt not in ("table", "json"):
        raise fail(f"--format {fmt!r}: use table or json")
    if (key is None) == (as_dept is None):
        raise fail("give --key VALUE (the auditor) or --as DEPT (a department's own receipts)")
    if key is not None and not key:
        raise fail("--key is empty")
    s = settings()
    bus = guarded(connection)(bootstrap_servers) if archive is None or s.sasl_username else None
    user = bus.username if bus is not None else None
    if key is not None and user not in (None, AUDITOR):
        raise fail(f"tracing a key is the auditor's: this process acts as the user {user!r}")
    if as_dept is not None and user not in (None, AUDITOR, as_dept):
        raise fail(f"the user {user!r} may not list what {as_dept!r} received")
    hasher = KeyHasher(s.audit_trace_key.get_secret_value().encode() if s.audit_trace_key else None)
    digest = hasher.digest(resource, key.encode()) if key is not None else None
    receipts = (
        guarded(_trace_archive)(archive, resource, digest, as_dept)
        if archive is not None
        else _trace_topic(bus, topic, resource, digest, as_dept)
    )
    if fmt == "json":
        print_json([r.to_json() for r in receipts])
        return
    typer.echo(table([r.row() for r in receipts], tr.HEADERS))
    what = "deliveries of that key" if key is not None else f"deliveries to {as_dept}"
    typer.echo(f"{len(receipts)} {what} of {resource}", err=True)


def _trace_archive(
    url: str, resource: str, digest: str | None, consumer: str | None
) -> list[tr.Receipt]:
    with archive_db.open_archive(url, setup=False) as db:
        if digest is not None:
            return tr.by_key_in_archive(db, resource, digest, consumer=consumer)
        assert consumer is not None
        return tr.received(db.deliveries(resource), resource, consumer)


def _trace_topic(
    bus: Connection | None, topic: str, resource: str, digest: str | None, consumer: str | None
) -> list[tr.Receipt]:
    assert bus is not None
    entries = [e for _, e in entries_only(run(read_log(bus, topic)))]
    if digest is not None:
        return tr.by_key(entries, resource, digest, consumer=consumer)
    assert consumer is not None
    return tr.received(entries, resource, consumer)


def _prune(url: str, month: str, bootstrap_servers: str | None, catalog_dir: Path | None) -> None:
    before = guarded(retention.month_start)(month)
    keys = _head_keys(bootstrap_servers, catalog_dir, offline=False, quiet=False) or {}
    months = settings().audit_retention_months

    def go() -> tuple[int, int]:
        with archive_db.open_archive(url, setup=False) as db:
            db.setup(indexes=False)  # an archive made before pruning existed: its new tables
            p = retention.plan(db, before, keys=keys, retention_months=months, now=now())
            return retention.prune(db, p), len(p.anchors)

    dropped, chains = guarded(go)()
    typer.echo(
        f"pruned {dropped} entries dated before {month} (Beijing time) from {url}; "
        f"{chains} chain(s) now resume at a signed, verified entry"
    )

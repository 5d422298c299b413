"""Commands imported only when they run, so ``exchange --help`` and every command start fast.

Importing Kafka, Avro, pydantic and the rest for every command cost the
command line 0.7 s before it did anything. The root group lists each command
with its one-line help from :data:`COMMANDS`; a command's module is imported
only when that command is invoked (or its own ``--help`` is asked for).
``tests/unit/test_cli_lazy.py`` checks the one-line help against each command.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    module: str  # exchange.cli.<module>
    attr: str  # a command function, or a Typer app of subcommands
    help: str  # the first line of its help, for the root --help


COMMANDS: dict[str, Lazy] = {
    "sample": Lazy(
        "data",
        "sample_cmd",
        "Write realistic sample records of any resource as JSON Lines, generated from its schema.",
    ),
    "publish": Lazy(
        "data", "publish", "Publish a JSON Lines file of records to gov.src.<provider>.<resource>."
    ),
    "delete": Lazy(
        "deletions",
        "delete",
        "Delete records of a resource you provide: a tombstone per key on "
        "gov.src.<you>.<resource>.",
    ),
    "consume": Lazy(
        "data",
        "consume",
        "Read your department's records of a resource, decoded with your view's schema.",
    ),
    "peek": Lazy(
        "data",
        "peek",
        "Read any topic your Kafka user may read, decoded: the broker's ACLs decide.",
    ),
    "subscribe": Lazy(
        "sharing",
        "subscribe",
        "Subscribe to a resource; the router then delivers your view to gov.dlv.<dept>.<resource>.",
    ),
    "explain": Lazy(
        "sharing",
        "explain",
        "Show what you are entitled to of a resource and whether it is delivered to you.",
    ),
    "apply": Lazy(
        "sharing", "apply", "Apply for conditional fields (有条件共享); prints the application id."
    ),
    "approve": Lazy(
        "answers", "approve", "Approve an application (provider only); prints the grant id."
    ),
    "reject": Lazy("answers", "reject", "Reject an application (provider only), with a reason."),
    "revoke": Lazy(
        "answers", "revoke", "Revoke a grant (provider only); deliveries under it stop at once."
    ),
    "agent": Lazy(
        "answers",
        "agent",
        "Keep a department's session open so its approve, reject and revoke take milliseconds.",
    ),
    "review": Lazy(
        "authority",
        "review",
        "Review an application for compliance (符合性审查; the data-sharing authority only).",
    ),
    "contest": Lazy(
        "authority",
        "contest",
        "Contest the rejection of your application (共享争议); negotiation with the provider opens.",
    ),
    "negotiate": Lazy(
        "authority",
        "negotiate",
        "Send a negotiation message (协商; consumer or provider), recorded on the path.",
    ),
    "escalate": Lazy(
        "authority",
        "escalate",
        "Escalate a contested refusal to the data-sharing authority (consumer or provider).",
    ),
    "decide": Lazy(
        "authority",
        "decide",
        "Decide an escalated refusal (协调决定; the data-sharing authority only).",
    ),
    "appeal": Lazy(
        "authority",
        "appeal",
        "Appeal the authority's order (the provider only); recorded, the grant stands.",
    ),
    "application": Lazy(
        "authority",
        "application",
        "Show the whole path of one application, with dates, actors, reasons and due dates.",
    ),
    "applications": Lazy(
        "sharing",
        "applications",
        "List applications, newest first; overdue = a stage past its time limit.",
    ),
    "dispute": Lazy(
        "disputes",
        "dispute",
        "Dispute fields of a record you received (疑义); prints the dispute id.",
    ),
    "disputes": Lazy(
        "disputes",
        "disputes",
        "List disputes you opened or about your resources (a provider's inbox), newest first.",
    ),
    "answer-dispute": Lazy(
        "disputes",
        "answer_dispute",
        "Answer a dispute about one of your resources (provider only): --corrected or --confirmed.",
    ),
    "freshness": Lazy(
        "freshness",
        "freshness_cmd",
        "List stale resources per provider: last publish older than the update cycle allows.",
    ),
    "subscriptions": Lazy(
        "backfill",
        "subscriptions",
        'List what you receive, and each backfill\'s progress (e.g. "backfill 412,000 / 1,000,000").',
    ),
    "resync": Lazy(
        "backfill",
        "resync",
        "Ask for your full view of a resource again: the routers backfill it, then go on live.",
    ),
    "snapshot": Lazy(
        "backfill",
        "snapshot",
        "Write a department's view of the current state of a resource to a file, with a manifest.",
    ),
    "router": Lazy(
        "router",
        "router",
        "Route every source record to every entitled consumer, as its own view.",
    ),
    "registry": Lazy(
        "registry",
        "registry",
        "Serve a read-only Confluent Schema Registry API: any Kafka client decodes the bus.",
    ),
    "gateway": Lazy(
        "gateway",
        "gateway",
        "Serve requests by key (接口调用) and verifications (核验), each caller its own view.",
    ),
    "console": Lazy(
        "console",
        "app",
        "The web console (管理控制台) of the sharing workflow, in Chinese with English beside it.",
    ),
    "acls": Lazy(
        "acls",
        "acls",
        "Generate the Kafka ACLs that confine each department (principal User:<dept>).",
    ),
    "broker": Lazy(
        "broker",
        "app",
        "Start, stop or inspect the development broker: the embedded one (Tansu, memory "
        "only: demos and tests) or a durable Apache Kafka cluster (KRaft, SASL users, ACLs).",
    ),
    "catalog": Lazy("catalog", "app", "The resource catalog and its shared list (共享清单)."),
    "audit": Lazy(
        "audit",
        "app",
        "The access log (gov.audit): verify its hash chains, query it, archive it, report on it.",
    ),
    "connect": Lazy(
        "connect",
        "app",
        "Connectors: department databases (PostgreSQL, MySQL/MariaDB) and files (JSON Lines, "
        "CSV) in and out of the bus, from a YAML config file (examples in deploy/connectors/).",
    ),
    "keys": Lazy(
        "keys", "app", "Keys that sign a department's commands (see README: signed commands)."
    ),
}


def load(name: str) -> Any:
    """The click command ``name`` (imports its module)."""
    spec = COMMANDS[name]
    target = getattr(importlib.import_module(f"exchange.cli.{spec.module}"), spec.attr)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)  # a group, even of a single command
    else:
        holder.command(name)(target)
    holder.callback()(lambda: None)  # so that typer builds a group holding the command
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


class LazyGroup(TyperGroup):
    """The root group: :data:`COMMANDS` are listed from the table and imported when run."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        # commands first, then those defined with the group, then the groups of commands
        groups = [n for n, spec in COMMANDS.items() if spec.attr == "app"]
        commands = [n for n in COMMANDS if n not in groups]
        return [*commands, *super().list_commands(ctx), *groups]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the root --help: the table's line, nothing imported
            return TyperCommand(cmd_name, short_help=COMMANDS[cmd_name].help)
        command = load(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

"""``exchange console``: the web console for people (applicants, approvers, auditors, admins)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from exchange.cli.common import BootstrapOption, connection, fail, guarded, run
from exchange.cli.serving import ClientLogLevelOption, LogLevelOption, setup_logging

if TYPE_CHECKING:
    from exchange.admin.users import Principals
    from exchange.console.service import ConsoleSettings

app = typer.Typer()

AccountsOption = Annotated[
    Path | None,
    typer.Option(
        envvar="EXCHANGE_CONSOLE_ACCOUNTS",
        help="YAML file of the people who may log in: user, name, department, roles "
        "(applicant, approver, auditor, catalog_admin), password_hash (argon2; "
        "'exchange console hash-password' makes one).",
    ),
]
KeysDirOption = Annotated[
    Path | None,
    typer.Option(
        envvar="EXCHANGE_CONSOLE_KEYS_DIR",
        help="Directory of the departments' signing keys, <dept>.pem: commands are signed "
        "with them on the server; the keys never reach a browser.",
    ),
]
CredentialsDirOption = Annotated[
    Path | None,
    typer.Option(
        envvar="EXCHANGE_CONSOLE_CREDENTIALS_DIR",
        help="Directory of the principals' broker passwords (<user>.password, as 'exchange "
        "acls --apply' writes them): each department acts as its own Kafka user, the "
        "access log is read as 'auditor'. Default: every principal uses the connection "
        "of EXCHANGE_* settings.",
    ),
]
KeysPrefixOption = Annotated[
    str,
    typer.Option(
        envvar="EXCHANGE_CONSOLE_KEYS_PREFIX",
        help="Prefix of the key files' names: <keys-dir>/<prefix><dept>.pem. 'key_' when "
        "systemd hands the folder over (LoadCredential=key:DIR names each file key_<file>).",
    ),
]
CredentialsPrefixOption = Annotated[
    str,
    typer.Option(
        envvar="EXCHANGE_CONSOLE_CREDENTIALS_PREFIX",
        help="Prefix of the password files' names: <credentials-dir>/<prefix><user>.password. "
        "'password_' when systemd hands the folder over (LoadCredential=password:DIR).",
    ),
]
StrimziUsersOption = Annotated[
    bool,
    typer.Option(
        envvar="EXCHANGE_CONSOLE_STRIMZI_USERS",
        help="Log each department in under its Strimzi user name (civil_affairs as "
        "civil-affairs: Kubernetes names allow no '_'), as 'exchange acls --format strimzi' "
        "names them.",
    ),
]


@app.callback(invoke_without_command=True)
def console(
    ctx: typer.Context,
    accounts: AccountsOption = None,
    port: Annotated[
        int, typer.Option(min=1, max=65535, envvar="EXCHANGE_CONSOLE_PORT", help="Port.")
    ] = 8090,
    host: Annotated[
        str,
        typer.Option(
            envvar="EXCHANGE_CONSOLE_HOST",
            help="Address to listen on: 127.0.0.1 by default; serve it to others behind TLS "
            "termination only (the session cookie is Secure).",
        ),
    ] = "127.0.0.1",
    keys_dir: KeysDirOption = None,
    credentials_dir: CredentialsDirOption = None,
    router_metrics: Annotated[
        list[str] | None,
        typer.Option(help="A router instance's /metrics URL, for the health page; repeatable."),
    ] = None,
    insecure_cookies: Annotated[
        bool,
        typer.Option(
            help="Session cookie without Secure (plain HTTP other than localhost): development "
            "only."
        ),
    ] = False,
    max_failures: Annotated[
        int, typer.Option(min=1, help="Wrong passwords in a row that lock an account.")
    ] = 5,
    lock_minutes: Annotated[
        float, typer.Option(min=0.1, help="How long a locked account stays locked.")
    ] = 15.0,
    keys_prefix: KeysPrefixOption = "",
    credentials_prefix: CredentialsPrefixOption = "",
    strimzi_users: StrimziUsersOption = False,
    bootstrap_servers: BootstrapOption = None,
    log_level: LogLevelOption = None,
    client_log_level: ClientLogLevelOption = None,
) -> None:
    """The web console (管理控制台) of the sharing workflow, in Chinese with English beside it.

    'exchange console --accounts FILE' serves it: the catalog, my view and applying, the
    approver's inbox and approval form, grants with revoke, the access log with its
    chains, the monthly report and router health. 'exchange console hash-password'
    prints a password's hash for the accounts file.

    Every action goes through the same API as the command line and is audited
    with the person who took it. Stops cleanly on Ctrl-C or SIGTERM.
    """
    if ctx.invoked_subcommand is not None:
        return
    if accounts is None:
        raise fail("--accounts FILE is required (or EXCHANGE_CONSOLE_ACCOUNTS)")
    for name, folder in (("--keys-dir", keys_dir), ("--credentials-dir", credentials_dir)):
        if folder is not None and not folder.is_dir():
            raise fail(f"{name} {folder}: not a directory")
    setup_logging(log_level, client_log_level)
    from exchange.console.service import ConsoleSettings

    settings = ConsoleSettings(
        accounts=accounts,
        keys_dir=keys_dir,
        keys_prefix=keys_prefix,
        router_metrics=list(router_metrics or []),
        secure_cookies=not insecure_cookies,
        max_failures=max_failures,
        lock_minutes=lock_minutes,
    )
    from exchange.admin.users import Principals

    bus = guarded(connection)(bootstrap_servers)
    principals = Principals(bus, credentials_dir, credentials_prefix, strimzi_users)
    _serve(settings, principals, host, port)


def _serve(settings: ConsoleSettings, principals: Principals, host: str, port: int) -> None:
    from exchange.console.accounts import AccountBook
    from exchange.console.app import console_app
    from exchange.control import catalog_store
    from exchange.http import server

    bus = principals.base
    in_force = run(catalog_store.current(bus))
    if in_force is None:
        raise fail(f"no catalog is loaded on {bus}: run 'exchange catalog load' first")
    book = guarded(AccountBook.load)(settings.accounts, set(in_force.catalog.departments))
    _check_password_files(principals, book.departments())
    web = console_app(bus, principals.of, settings, book)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"console on http://{shown}:{port} for {len(book.accounts)} account(s), following {bus}; "
        "Ctrl-C stops it"
    )
    run(server.serve(web, host, port), loop_factory=server.event_loop)


def _check_password_files(principals: Principals, departments: set[str]) -> None:
    """Refuse to start without the password of a principal the console acts as."""
    from exchange.admin.acls import AUDITOR
    from exchange.admin.users import password_file

    folder = principals.credentials
    if folder is None or not principals.base.sasl:
        return
    missing = [
        str(password_file(folder, f"{principals.prefix}{who}"))
        for who in sorted(departments | {AUDITOR})
        if not password_file(folder, f"{principals.prefix}{who}").is_file()
    ]
    if missing:
        raise fail(
            f"--credentials-dir: no password file for {len(missing)} principal(s) the console "
            f"acts as: {', '.join(missing)} (check --credentials-prefix)"
        )


@app.command("hash-password")
def hash_password() -> None:
    """Ask for a password twice and print its argon2id hash for the accounts file."""
    from exchange.console.accounts import AccountError
    from exchange.console.accounts import hash_password as make

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        typer.echo(make(password))
    except AccountError as exc:
        raise fail(str(exc)) from None

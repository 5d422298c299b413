"""What every CLI command shares: settings, the broker address, errors, async."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from exchange.errors import BrokerUnavailable, CatalogErrors, ExchangeError
from exchange.tables import table

if TYPE_CHECKING:
    from exchange.bus.connection import Connection
    from exchange.settings import Settings

__all__ = ["table"]

T = TypeVar("T")

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        envvar="EXCHANGE_BOOTSTRAP_SERVERS",
        help="Kafka bootstrap servers (HOST:PORT,...). Default: the embedded broker started "
        "with 'exchange broker start'.",
        show_default=False,
    ),
]
AsOption = Annotated[
    str,
    typer.Option("--as", help="The department acting (its id in the catalog, e.g. 'police')."),
]


KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="EXCHANGE_KEY_FILE",
        help="PEM file with the acting department's Ed25519 private key; required when the "
        "catalog registers a public key for it ('exchange keys generate' makes one).",
        show_default=False,
    ),
]


def signing_key(path: Path | None) -> Any:
    """The private key in ``path`` (None if no file is given)."""
    if path is None:
        return None
    from exchange.catalog.signing import load_private_key

    try:
        return load_private_key(path)
    except ExchangeError as exc:
        raise fail(str(exc)) from None


def settings() -> Settings:
    from exchange.settings import Settings  # pydantic: imported when a command needs it

    return Settings()


NO_BROKER_HELP = (
    "no Kafka broker given and none started by 'exchange broker start' is running. Either "
    "start one ('exchange broker start [--engine kafka]'), or pass --bootstrap-servers HOST:PORT "
    "(or set EXCHANGE_BOOTSTRAP_SERVERS) for a real Kafka cluster"
)


def connection(explicit: str | None) -> Connection:
    """The command's connection to the bus, built once from its settings.

    It also installs the audit head signer the settings name (``EXCHANGE_AUDIT_SERVICE``,
    ``EXCHANGE_AUDIT_KEY_FILE``), which every audit writer of the process then uses.

    The bootstrap servers are the option's (or ``EXCHANGE_BOOTSTRAP_SERVERS``), else those
    of the broker 'exchange broker start' started (:mod:`exchange.dev.engines`); security,
    credentials and topic policy are the settings'.
    """
    from exchange.audit import heads
    from exchange.dev import broker, engines

    s = settings()
    # every audit writer of this process signs its chain heads as the configured service
    heads.install(heads.from_settings(s))
    address = explicit or s.bootstrap_servers
    info = broker.status(s.state_dir)
    if address:  # the embedded broker's own address, given explicitly, is still it
        return s.connection(address, embedded=info is not None and address == info.bootstrap)
    if info is not None:
        return s.connection(info.bootstrap, embedded=True)
    cluster = engines.running_kafka(s.state_dir)
    if cluster is not None:
        return engines.connection_to(cluster, s)
    raise BrokerUnavailable(NO_BROKER_HELP)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def run(
    coro: Coroutine[Any, Any, T],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run a coroutine, turning the bus's errors into a clear message and exit code 2.

    ``loop_factory``: the event loop to run it on (the HTTP services pass
    :func:`exchange.http.server.event_loop`, uvloop's); default asyncio's own.
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)
    except CatalogErrors as exc:
        raise fail(str(exc)) from None
    except ExchangeError as exc:
        raise fail(str(exc)) from None


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator for synchronous commands: ExchangeError becomes a clear message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ExchangeError as exc:
            raise fail(str(exc)) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")

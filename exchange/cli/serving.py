"""What the long-running commands share (router, connect run, audit archive): their log
and their Prometheus metrics endpoint."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Annotated, Any

import typer

from exchange import beijing
from exchange.cli.common import fail, settings

#: the client libraries whose INFO lines (connections, group joins) would drown the bus's own
CLIENT_LOGGERS = ("aiokafka", "kafka")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

LogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        help="Level of the bus's own log (assignments, policy reloads, dead letters, stalls): "
        "DEBUG, INFO, WARNING or ERROR. Default INFO (EXCHANGE_LOG_LEVEL).",
        show_default=False,
    ),
]
ClientLogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--client-log-level",
        help="Level of the Kafka client libraries' log (aiokafka, kafka). Default WARNING "
        "(EXCHANGE_CLIENT_LOG_LEVEL); INFO or DEBUG to see their connections and group joins.",
        show_default=False,
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=65535,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (HOST: --metrics-host).",
        show_default=False,
    ),
]
MetricsHostOption = Annotated[
    str | None,
    typer.Option(
        help="Address the metrics endpoint listens on. Default 127.0.0.1, this machine only "
        "(EXCHANGE_METRICS_HOST); 0.0.0.0 for every interface, behind a firewall.",
        show_default=False,
    ),
]


def _level(value: str, option: str) -> int:
    name = value.strip().upper()
    if name not in LEVELS:
        raise fail(f"{option} {value!r}: use {', '.join(LEVELS)}")
    return int(getattr(logging, name))


def _beijing_time(seconds: float | None) -> time.struct_time:
    moment = (
        dt.datetime.now(dt.UTC) if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)
    )
    return beijing.beijing(moment).timetuple()


def setup_logging(level: str | None, client_level: str | None) -> None:
    """One line per event, Beijing time, the bus's own at ``level``, the client libraries'
    at ``client_level``."""
    s = settings()
    own = _level(level or s.log_level, "--log-level (EXCHANGE_LOG_LEVEL)")
    client = _level(
        client_level or s.client_log_level, "--client-log-level (EXCHANGE_CLIENT_LOG_LEVEL)"
    )
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03d+08:00 %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    formatter.converter = _beijing_time  # like every time the bus shows (exchange.beijing)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=own, handlers=[handler])
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(client)


def serve_metrics(registry: Any, port: int | None, host: str | None) -> Any:
    """Start the metrics endpoint on ``host:port`` (the HTTP server; None if no port)."""
    if port is None:
        return None
    from prometheus_client import start_http_server

    addr = host or settings().metrics_host
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise fail(f"metrics endpoint on {addr}:{port}: {exc.strerror or exc}") from None
    shown = f"[{addr}]" if ":" in addr else addr
    typer.echo(f"metrics on http://{shown}:{port}/metrics")
    return server

"""Beijing time (北京时间, UTC+8): the one time zone of every date a person reads.

The rule of the bus: instants are kept as UTC inside (Avro timestamp-millis,
Kafka timestamps), and everything made for people is in Beijing time: the
date in an id (``GR-20261130-…`` is a grant made on 30 November in Beijing),
times in tables, messages and refusals, and the ISO timestamps of JSON
output and audit details (written with their ``+08:00`` offset, so a program
reads the same instant). A date or time given without a zone is read as
Beijing time.
"""

from __future__ import annotations

import datetime as dt

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


def beijing(moment: dt.datetime) -> dt.datetime:
    """The instant in Beijing time (a naive time is taken as UTC, as Python's clock gives it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(CHINA_TZ)


def china_date(moment: dt.datetime) -> dt.date:
    """The calendar date in Beijing of an instant (naive times are taken as UTC)."""
    return beijing(moment).date()


def id_date(moment: dt.datetime | None = None) -> str:
    """``YYYYMMDD`` of the Beijing date of ``moment`` (now by default), as ids carry it."""
    return f"{china_date(moment or dt.datetime.now(dt.UTC)):%Y%m%d}"


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in Beijing time with its offset, e.g. ``2026-11-30T05:40:00+08:00``."""
    return beijing(moment).isoformat()


def shown(moment: dt.datetime, *, seconds: bool = False) -> str:
    """A time for tables: ``2026-11-30 05:40`` (Beijing time), with seconds if asked."""
    return beijing(moment).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

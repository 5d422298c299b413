"""Beijing time (北京时间, UTC+8): the one time zone of every date a person reads.

The rule of the bus: instants are kept as UTC inside (Avro timestamp-millis,
Kafka timestamps), and everything made for people is in Beijing time: the
date in an id (``GR-20261130-…`` is a grant made on 30 November in Beijing),
times in tables, messages and refusals, and the ISO timestamps of JSON
output and audit details (written with their ``+08:00`` offset, so a program
reads the same instant). A date or time given without a zone to find
things (``audit query --since/--until``) is read as Beijing time.

An expiry (a grant's valid-until) is a promise, so it follows one stricter
rule, the same in the CLI and the API (:func:`expiry`, :data:`EXPIRY_RULE`):
a date means through the end of that day in Beijing; a time must carry its
zone, and one without a zone is refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")

EXPIRY_RULE = (
    "an expiry is a date, YYYY-MM-DD (valid through the end of that day, Beijing time), "
    "or an ISO timestamp with its zone, e.g. 2026-12-31T18:00+08:00; a time without a "
    "zone is refused"
)


class ExpiryError(ValueError):
    """An expiry that does not follow :data:`EXPIRY_RULE`."""


def end_of_day(day: dt.date) -> dt.datetime:
    """The end of ``day`` in Beijing: 00:00 +08:00 of the day after."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), CHINA_TZ)


def expiry(value: str | dt.date) -> dt.datetime:
    """The instant an expiry means, by :data:`EXPIRY_RULE`: a date (``YYYY-MM-DD`` or a
    :class:`datetime.date`) is the end of that Beijing day; a time (ISO text or a
    :class:`datetime.datetime`) must carry its zone. Raises :class:`ExpiryError`."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return end_of_day(dt.date.fromisoformat(text))
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ExpiryError(f"{value!r} is not an expiry: {EXPIRY_RULE}") from None
        return expiry(parsed)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ExpiryError(f"valid-until {value.isoformat()} has no time zone: {EXPIRY_RULE}")
        return value
    if isinstance(value, dt.date):
        return end_of_day(value)
    raise ExpiryError(f"valid-until must be a date or a time, not {type(value).__name__}")


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

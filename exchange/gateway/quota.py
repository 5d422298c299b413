"""Quotas of a grant (a common condition of 有条件共享): requests per second and per day.

Counted per grant in a one-second window and a Beijing-time day, in a
:class:`~exchange.gateway.quota_table.QuotaTable`: with a file behind it, every
worker process of the gateway counts in the same table, so together they allow a
grant its quota (not each of them), and a restart keeps the day's count. Separate
gateways with separate stores (behind one load balancer) each count their own.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

from exchange import beijing
from exchange.gateway.quota_table import Counts, QuotaTable
from exchange.sharing.records import Grant


class OverQuota(Exception):
    """Over a quota: retry after ``retry_after`` seconds (whole seconds, at least 1)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class Quotas:
    """Counts requests per grant; ``path``: the table shared with the other workers (None: this
    process alone)."""

    def __init__(self, path: Path | None = None) -> None:
        self.table = QuotaTable(path)
        self._day: tuple[int, dt.date] = (-1, dt.date.min)  # (second, its Beijing day)

    def close(self) -> None:
        self.table.close()

    def take(self, grant: Grant | None, now: float | None = None) -> None:
        """Count one request under ``grant``; raise :class:`OverQuota` if it is one too many.

        A refused request does not count (a caller retrying too early does not push its
        own window further).
        """
        if grant is None or (grant.quota_per_second is None and grant.quota_per_day is None):
            return
        now = time.time() if now is None else now
        second = int(now)
        day = self._day_of(second)
        today = day.toordinal()
        per_second, per_day = grant.quota_per_second, grant.quota_per_day

        def count(c: Counts) -> None:
            if c.second != second:
                c.second, c.in_second = second, 0
            if c.day != today:
                c.day, c.in_day = today, 0
            if per_day is not None and c.in_day >= per_day:
                midnight = beijing.end_of_day(day).timestamp()
                raise OverQuota(
                    f"grant {grant.id} allows {per_day} requests per day (Beijing time); "
                    "they are used up",
                    max(1, math.ceil(midnight - now)),
                )
            if per_second is not None and c.in_second >= per_second:
                raise OverQuota(
                    f"grant {grant.id} allows {per_second} requests per second",
                    max(1, math.ceil(second + 1 - now)),
                )
            c.in_second += 1
            c.in_day += 1

        self.table.update(grant.id, today, count)

    def _day_of(self, second: int) -> dt.date:
        """The Beijing day of ``second`` (worked out once a second: it is most of a count's cost)."""
        if self._day[0] != second:
            self._day = (second, beijing.china_date(dt.datetime.fromtimestamp(second, dt.UTC)))
        return self._day[1]

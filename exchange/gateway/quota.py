"""Quotas of a grant (a common condition of 有条件共享): requests per second and per day.

Counted per grant in this gateway process: a one-second window and a
Beijing-time day. Several gateways behind a load balancer each count their
own requests, so a grant's quota is per gateway instance (the README says
so); a restart starts the day's count again.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass

from exchange import beijing
from exchange.sharing.records import Grant


@dataclass
class _Count:
    second: int = -1
    in_second: int = 0
    day: dt.date | None = None
    in_day: int = 0


class OverQuota(Exception):
    """Over a quota: retry after ``retry_after`` seconds (whole seconds, at least 1)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class Quotas:
    def __init__(self) -> None:
        self._counts: dict[str, _Count] = {}

    def take(self, grant: Grant | None, now: float | None = None) -> None:
        """Count one request under ``grant``; raise :class:`OverQuota` if it is one too many.

        A refused request does not count (a caller retrying too early does not push its
        own window further).
        """
        if grant is None or (grant.quota_per_second is None and grant.quota_per_day is None):
            return
        now = time.time() if now is None else now
        count = self._counts.setdefault(grant.id, _Count())
        second = int(now)
        if count.second != second:
            count.second, count.in_second = second, 0
        day = beijing.china_date(dt.datetime.fromtimestamp(now, dt.UTC))
        if count.day != day:
            count.day, count.in_day = day, 0
        if grant.quota_per_day is not None and count.in_day >= grant.quota_per_day:
            midnight = beijing.end_of_day(day).timestamp()
            raise OverQuota(
                f"grant {grant.id} allows {grant.quota_per_day} requests per day (Beijing time); "
                "they are used up",
                max(1, math.ceil(midnight - now)),
            )
        if grant.quota_per_second is not None and count.in_second >= grant.quota_per_second:
            raise OverQuota(
                f"grant {grant.id} allows {grant.quota_per_second} requests per second",
                max(1, math.ceil(second + 1 - now)),
            )
        count.in_second += 1
        count.in_day += 1

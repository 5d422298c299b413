"""Freshness (更新周期): a resource's last publish against the update cycle its catalog entry declares.

The interim measures (国发〔2016〕51号) oblige a provider to keep its shared
data updated at the cycle its catalog entry declares. A resource is **stale**
when more time than its cycle allows has passed since its last publish:

==============  ==========================  ====================================
update cycle    allowed since last publish  note
==============  ==========================  ====================================
real-time       1 hour                      a silent real-time feed is a broken one
daily           1 day
weekly          7 days
monthly         31 days
quarterly       92 days
yearly          366 days
on-change       never stale                 published only when something changes
==============  ==========================  ====================================

A resource with a cycle and no publish yet is measured from the moment it
was first watched (``since``): a resource just added to the catalog is not
stale on its first day. Pure functions: the clock is always passed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from exchange.catalog.model import Catalog, Resource, UpdateCycle

ALLOWED: dict[UpdateCycle, dt.timedelta | None] = {
    UpdateCycle.REAL_TIME: dt.timedelta(hours=1),
    UpdateCycle.DAILY: dt.timedelta(days=1),
    UpdateCycle.WEEKLY: dt.timedelta(days=7),
    UpdateCycle.MONTHLY: dt.timedelta(days=31),
    UpdateCycle.QUARTERLY: dt.timedelta(days=92),
    UpdateCycle.YEARLY: dt.timedelta(days=366),
    UpdateCycle.ON_CHANGE: None,
}


def allowed(resource: Resource) -> dt.timedelta | None:
    """How long after its last publish ``resource`` may go unpublished (None: no cycle)."""
    return ALLOWED[resource.update_cycle]


@dataclass(frozen=True)
class Freshness:
    """One resource's freshness at one instant."""

    resource: str
    provider: str
    cycle: UpdateCycle
    last_publish: dt.datetime | None
    #: from when its cycle is counted: the last publish, or when it was first watched
    counted_from: dt.datetime
    at: dt.datetime

    @property
    def due_by(self) -> dt.datetime | None:
        """The instant after which it is stale (None: on-change, never)."""
        window = ALLOWED[self.cycle]
        return None if window is None else self.counted_from + window

    @property
    def stale(self) -> bool:
        due = self.due_by
        return due is not None and self.at > due

    @property
    def late_by(self) -> dt.timedelta:
        """How late the next publish is (zero when fresh)."""
        due = self.due_by
        return max(dt.timedelta(0), self.at - due) if due is not None else dt.timedelta(0)


def of(
    resource: Resource, last_publish: dt.datetime | None, *, at: dt.datetime, since: dt.datetime
) -> Freshness:
    """The freshness of ``resource`` at ``at`` (``since``: when watching it began)."""
    return Freshness(
        resource=resource.id,
        provider=resource.provider,
        cycle=resource.update_cycle,
        last_publish=last_publish,
        counted_from=last_publish or since,
        at=at,
    )


def survey(
    catalog: Catalog,
    last_publish: dict[str, dt.datetime | None],
    *,
    at: dt.datetime,
    since: dt.datetime,
    provider: str | None = None,
) -> list[Freshness]:
    """The freshness of every resource with an update cycle (of ``provider``, if given)."""
    out = []
    for res in sorted(catalog.resources.values(), key=lambda r: (r.provider, r.id)):
        if ALLOWED[res.update_cycle] is None or (provider and res.provider != provider):
            continue
        out.append(of(res, last_publish.get(res.id), at=at, since=since))
    return out


def shown_delta(delta: dt.timedelta) -> str:
    """A duration for people: ``3d 4h``, ``5h 12m``, ``40s``."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"

"""The permission manager's decision: which view of a resource a department gets.

fields(C, R) = unconditional fields ∪ (conditional fields ∩ fields of C's
active grant on R); not-shared fields never; the provider sees everything.
The grant adds masks and a row filter. An empty view is a denial, with the
rule that denied it. Being entitled to a view is not receiving it: the router
delivers a view only to a department that subscribed or holds an active grant. This module only decides; :mod:`exchange.router.view` applies
the decision to records.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

from exchange import beijing
from exchange.avro import schema as avro
from exchange.bus import topics
from exchange.catalog.model import Catalog, Resource, ShareType
from exchange.enforce.masks import parse_mask
from exchange.sharing.records import Grant


class GrantLookup(Protocol):
    """What the decision needs of the grant book (:class:`~exchange.sharing.grants.GrantBook`)."""

    def grant_for(self, consumer: str, resource: str, at: dt.datetime) -> Grant | None: ...

    def latest_grant(self, consumer: str, resource: str) -> Grant | None: ...

    def receives(self, consumer: str, resource: str, at: dt.datetime) -> bool: ...


@dataclass(frozen=True)
class View:
    """What ``consumer`` is entitled to receive of ``resource``, and why.

    ``fields`` are the fields it is entitled to; ``receiving`` says whether the
    router delivers them (it subscribed or holds an active grant; the provider
    reads its own source). ``may_apply_for``: conditional fields it could apply for.
    """

    consumer: str
    resource: str
    provider: str
    fields: tuple[str, ...]
    masks: dict[str, str] = field(default_factory=dict)
    row_filter: str | None = None
    grant_id: str | None = None
    purpose: str | None = None
    valid_until: dt.datetime | None = None
    excluded: dict[str, str] = field(default_factory=dict)  # field -> why it is left out
    denied: str | None = None  # the rule that denies the whole view, if empty
    receiving: bool = False
    may_apply_for: tuple[str, ...] = ()

    @property
    def topic(self) -> str:
        """Where the department reads the resource: its delivery topic, or the source."""
        if self.consumer == self.provider:
            return topics.source(self.provider, self.resource)
        return topics.delivery(self.consumer, self.resource)

    @property
    def delivered(self) -> tuple[str, ...]:
        """The fields the router delivers to the department now (none until it subscribes)."""
        return self.fields if self.receiving else ()

    def not_receiving(self) -> str | None:
        """Why nothing reaches the department, and what to do about it (None if it receives)."""
        if self.receiving:
            return None
        who, what = self.consumer, self.resource
        if self.denied:
            why = f"{who!r} is not entitled to {what!r}: {self.denied}"
            if self.may_apply_for:
                why += (
                    f"; apply to the provider {self.provider!r} for its conditional fields "
                    f"(有条件共享): exchange apply --as {who} {what} "
                    f"--fields {','.join(self.may_apply_for)} --purpose '...'"
                )
            return why
        return (
            f"{who!r} has not subscribed to {what!r}, so nothing is delivered to "
            f"{self.topic}; subscribe first: exchange subscribe --as {who} {what}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "resource": self.resource,
            "provider": self.provider,
            "decision": "denied" if self.denied else "granted",
            "denied_reason": self.denied,
            "entitled_fields": list(self.fields),
            "receiving": self.receiving,
            "delivered_fields": list(self.delivered),
            "topic": self.topic,
            "not_receiving_because": self.not_receiving(),
            "may_apply_for": list(self.may_apply_for),
            "masks": self.masks,
            "row_filter": self.row_filter,
            "grant_id": self.grant_id,
            "purpose": self.purpose,
            "valid_until": beijing.iso(self.valid_until) if self.valid_until else None,
            "excluded": self.excluded,
        }


@functools.lru_cache(maxsize=1024)
def _not_shared(legal_basis: str | None) -> str:
    """Why a field that is never shared is not in the view."""
    return f"不予共享 not shared: never delivered (legal basis: {legal_basis})"


def _not_granted(res: Resource, grant: Grant | None, latest: Grant | None, at: dt.datetime) -> str:
    """Why a conditional field is not in the view."""
    if grant is not None:
        return f"有条件共享 conditional: not among the fields of grant {grant.id}"
    if latest is not None and latest.verify_only and latest.status(at) == "active":
        return f"有条件共享 conditional: grant {latest.id} allows verification (核验) only"
    if latest is not None:
        return f"有条件共享 conditional: grant {latest.id} is {latest.status(at)}; apply again"
    return (
        "有条件共享 conditional: no active grant; apply to the provider "
        f"{res.provider!r} with 'exchange apply'"
    )


def compute_view(
    catalog: Catalog, book: GrantLookup, consumer: str, resource: str, *, at: dt.datetime
) -> View:
    res = catalog.resource(resource)
    catalog.department(consumer)
    if consumer == res.provider:
        return View(consumer, res.id, res.provider, tuple(res.field_names()), receiving=True)
    grant = book.grant_for(consumer, res.id, at)
    if grant is not None and grant.verify_only:
        grant = None  # 核验: its fields are compared by the gateway, never delivered
    latest = book.latest_grant(consumer, res.id)
    granted = set(grant.fields) if grant else set()
    fields: list[str] = []
    excluded: dict[str, str] = {}
    conditional: list[str] = []
    not_granted = None  # the same for every conditional field left out: worked out once
    for f in res.fields:
        if f.share_type is ShareType.UNCONDITIONAL:
            fields.append(f.name)
        elif f.share_type is ShareType.NOT_SHARED:
            excluded[f.name] = _not_shared(f.legal_basis)
        elif f.name in granted:
            fields.append(f.name)
        else:
            conditional.append(f.name)
            if not_granted is None:
                not_granted = _not_granted(res, grant, latest, at)
            excluded[f.name] = not_granted
    denied = None
    if res.share.type is ShareType.NOT_SHARED:
        denied = (
            f"resource {res.id!r} is wholly not shared (不予共享) "
            f"(legal basis: {res.share.legal_basis})"
        )
    elif not fields:
        denied = (
            f"no field of {res.id!r} is left for {consumer!r}: every field is conditional "
            "(有条件共享) or not shared (不予共享), and no active grant covers any"
        )
    masks = {k: v for k, v in (grant.masks if grant else {}).items() if k in fields}
    return View(
        consumer=consumer,
        resource=res.id,
        provider=res.provider,
        fields=tuple(fields) if not denied else (),
        masks=masks if not denied else {},
        row_filter=grant.row_filter if grant and not denied else None,
        grant_id=grant.id if grant else None,
        purpose=grant.purpose if grant else None,
        valid_until=grant.valid_until if grant else None,
        excluded=excluded,
        denied=denied,
        receiving=not denied and book.receives(consumer, res.id, at),
        may_apply_for=tuple(conditional) if res.share.type is not ShareType.NOT_SHARED else (),
    )


def view_schema(res: Resource, view: View) -> avro.Schema:
    """The Avro schema of what ``view.consumer`` receives.

    Fields are the view's, in the resource's order; masked fields become
    strings (nullable if the original was) and their ``doc`` names the rule.
    A view of every field without masks is the resource schema itself, so
    the router can forward the source bytes unchanged.
    """
    if list(view.fields) == res.field_names() and not view.masks:
        return res.schema_
    by_name = {f["name"]: f for f in res.schema_["fields"]}
    out_fields = []
    for name in view.fields:
        f = dict(by_name[name])
        spec = view.masks.get(name)
        if spec is not None:
            f["type"] = ["null", "string"] if avro.field_is_nullable(f["type"]) else "string"
            f["doc"] = f"{f.get('doc', '')} [{parse_mask(spec).describe()}]".strip()
            f.pop("default", None)
            if f["type"] != "string":
                f["default"] = None
        out_fields.append(f)
    schema = {k: v for k, v in res.schema_.items() if k != "fields"}
    # the schema describes a shape, not who holds it: views of the same fields and masks
    # share one schema id (who received what under which grant is in the audit log)
    schema["namespace"] = "gov.exchange.view"
    schema["doc"] = (
        f"{res.schema_.get('doc', res.name_en)} — a view of {res.id}: "
        f"{len(view.fields)} of {len(res.fields)} fields"
    )
    schema["fields"] = out_fields
    return schema

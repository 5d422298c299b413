"""Who may ask what of a resource through the gateway, decided by the permission manager.

The fields, masks and row filter come from :func:`~exchange.sharing.policy.compute_view`
and :func:`~exchange.router.view.compile_view`, exactly as for the stream. On top,
one rule of the interface (接口调用): a request by key into a resource whose share
type is conditional (有条件共享) needs an active data grant, even when some of its
fields are unconditional, because whether a record exists for a key is itself a
fact about that person (an allowance, an enrolment) that the shared list makes
conditional. A verification (核验) needs a verification grant or a data view
holding the compared fields in clear. Decisions are cached per (caller,
resource) and dropped when the catalog or a grant changes, or a grant ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exchange.bus import topics
from exchange.catalog.model import Catalog, Resource, ShareType
from exchange.control.state import ControlState
from exchange.enforce.rowfilter import RowFilter, compile_filter
from exchange.errors import ExchangeError
from exchange.router.view import CompiledView, compile_view
from exchange.router.view_table import Decoder
from exchange.sharing.policy import View, compute_view
from exchange.sharing.records import Grant


class Refused(ExchangeError):
    """A request the policy refuses: ``status`` (403, 404) and a message for the caller."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass
class Access:
    """What one caller may learn of one resource, compiled."""

    caller: str
    resource: Resource
    topic: str
    decoder: Decoder
    #: the fields answered by key, in order (empty: verification only)
    fields: tuple[str, ...]
    compiled: CompiledView | None  # None: the provider, who sees its records as they are
    #: the grant in force (data or verification), None for the provider and unconditional use
    grant: Grant | None
    #: fields whose values a verification may compare
    comparable: frozenset[str]
    view: View | None = None
    #: the grant's row filter: a record outside it is "not found" / "no match"
    row_filter: RowFilter | None = None

    @property
    def masks(self) -> dict[str, str]:
        return self.view.masks if self.view is not None else {}

    def may_query(self) -> str | None:
        """Why a request by key is refused (None: it is allowed)."""
        if self.fields:
            return None
        gid = self.grant.id if self.grant is not None else "?"
        return (
            f"grant {gid} on {self.resource.id!r} allows verification (核验) only: "
            f"POST /v1/resources/{self.resource.id}/verify"
        )

    def read(self, framed: bytes) -> Mapping[str, Any]:
        """The record of a value of the store (:class:`DecodeError` if it cannot be read).

        A record of the resource's current schema, as the router reads one: its bytes are
        checked whole (:mod:`exchange.avro.scan`) and only the fields the view, its masks
        and its row filter read are decoded; one of an older schema is decoded whole, to
        the current one.
        """
        record: Mapping[str, Any] = self.decoder.read(framed)[2]
        return record

    def visible(self, record: Mapping[str, Any]) -> bool:
        row_filter = self.row_filter
        return row_filter is None or row_filter.matches(record)

    def render(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The caller's view of a decoded record (it passed :meth:`visible`)."""
        masks = self.compiled.masks if self.compiled is not None else {}
        return {
            name: (masks[name](record[name]) if name in masks else record[name])
            for name in self.fields
        }


class AccessTable:
    """Compiles and caches :class:`Access` per (caller, resource) from the control state."""

    def __init__(self, state: ControlState, master_secret: bytes) -> None:
        self.state = state
        self.master_secret = master_secret
        self.generation = 0
        self._cache: dict[tuple[str, str], Access | Refused] = {}
        self._decoders: dict[str, Decoder] = {}
        self._cached_generation = -1
        self._valid_until: dt.datetime | None = None

    def changed(self) -> None:
        """The catalog or a grant changed: every decision is made again."""
        self.generation += 1

    def access(self, caller: str, resource: str) -> Access:
        """The caller's access to ``resource``, or :class:`Refused` (raised)."""
        now = dt.datetime.now(dt.UTC)
        if self._cached_generation != self.generation or (
            self._valid_until is not None and now >= self._valid_until
        ):
            self._cache, self._decoders = {}, {}
            self._cached_generation = self.generation
            self._valid_until = self.state.book.next_expiry(now) if self.state.snapshot else None
        found = self._cache.get((caller, resource))
        if found is None:
            try:
                found = self._decide(caller, resource, now)
            except Refused as exc:
                found = exc
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[(caller, resource)] = found
        if isinstance(found, Refused):
            raise found
        return found

    def _decoder(self, res: Resource) -> Decoder:
        decoder = self._decoders.get(res.id)
        if decoder is None:
            decoder = self._decoders[res.id] = Decoder(res, self.state)
        return decoder

    def _decide(self, caller: str, resource: str, now: dt.datetime) -> Access:
        if self.state.snapshot is None:
            raise Refused(503, 50301, "no catalog is loaded yet")
        catalog: Catalog = self.state.catalog
        res = catalog.resources.get(resource)
        if res is None:
            raise Refused(404, 40402, f"unknown resource {resource!r}")
        if caller not in catalog.departments:
            raise Refused(
                403, 40301, f"{caller!r} is not a department of the catalog: it asks for no data"
            )
        source = topics.source(res.provider, res.id)
        if caller == res.provider:
            names = tuple(res.field_names())
            return Access(
                caller, res, source, self._decoder(res), names, None, None, frozenset(names)
            )
        view = compute_view(catalog, self.state.book, caller, res.id, at=now)
        grant = self.state.book.grant_for(caller, res.id, now)
        if view.denied and not (grant is not None and grant.verify_only):
            raise Refused(403, 40301, view.denied)
        if res.share.type is ShareType.CONDITIONAL and grant is None:
            latest = self.state.book.latest_grant(caller, res.id)
            raise Refused(403, 40301, _needs_grant(res, latest, now))
        verify_only = grant is not None and grant.verify_only
        row_filter: RowFilter | None
        try:
            compiled = compile_view(res, view, self.master_secret) if not view.denied else None
            if verify_only and grant is not None and grant.row_filter:
                row_filter = compile_filter(grant.row_filter, res.field_names())
            else:
                row_filter = compiled.row_filter if compiled is not None else None
        except ExchangeError as exc:  # fail closed, as the router does
            raise Refused(403, 40302, f"the view of {res.id!r} cannot be compiled: {exc}") from exc
        if verify_only and grant is not None:
            fields: tuple[str, ...] = ()
            comparable = frozenset(grant.fields) | frozenset(res.fields_of(ShareType.UNCONDITIONAL))
        else:
            fields = view.fields
            comparable = frozenset(f for f in view.fields if f not in view.masks)
        return Access(
            caller,
            res,
            source,
            self._decoder(res),
            fields,
            compiled,
            grant,
            comparable,
            view,
            row_filter,
        )


def _needs_grant(res: Resource, latest: Grant | None, now: dt.datetime) -> str:
    why = f"{res.id!r} is conditional (有条件共享): a request by key needs an active grant"
    if latest is not None:
        return f"{why}; grant {latest.id} is {latest.status(now)}"
    return (
        f"{why}; apply to the provider {res.provider!r}: exchange apply {res.id} "
        "--fields ... --purpose '...' (add --verify for verification only, 核验)"
    )

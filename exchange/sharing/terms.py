"""The terms of a grant: fields, masks, row filter and expiry, checked against the catalog.

One set of rules for what a provider's approval and the data-sharing
authority's order (责令共享) may grant: conditional fields only (never a
not-shared one, 不予共享: only a signed catalog load can change a field's
share type), never more than the application asked for, masks that apply to
fields the consumer receives, a row filter that compiles and reads no
not-shared field, an expiry in the future.
"""

from __future__ import annotations

from exchange import beijing
from exchange.catalog.model import Catalog, ShareType
from exchange.enforce.masks import check_applicable, parse_mask
from exchange.enforce.rowfilter import compile_filter
from exchange.errors import CommandRefused, ExchangeError
from exchange.sharing.records import Application, GrantEvent, GrantKind


def check_fields(
    fields: tuple[str, ...], resource: str, catalog: Catalog, *, verify: bool = False
) -> None:
    """Fields an application, approval or order may name: conditional ones (and, for a
    verification, 核验, unconditional ones too: comparing them is part of the question)."""
    res = catalog.resource(resource)
    for name in fields:
        try:
            info = res.field(name)
        except KeyError:
            raise CommandRefused(
                f"{name!r} is not a field of {resource!r} (fields: {', '.join(res.field_names())})"
            ) from None
        if info.share_type is ShareType.NOT_SHARED:
            raise CommandRefused(
                f"field {name!r} of {resource!r} is not shared (不予共享) and cannot be "
                f"granted by anyone (legal basis: {info.legal_basis})"
            )
        if info.share_type is ShareType.UNCONDITIONAL and not verify:
            raise CommandRefused(
                f"field {name!r} of {resource!r} is unconditional (无条件共享): it is delivered "
                "to every subscriber without an application"
            )


def check_terms(ev: GrantEvent, app: Application, catalog: Catalog, what: str) -> None:
    """The fields, masks, filter and expiry of an approval or order (``what``) of ``app``."""
    if not ev.fields:
        raise CommandRefused(f"{what} must grant at least one field")
    if app.kind is GrantKind.VERIFY and not ev.for_verification:
        raise CommandRefused(
            f"application {app.id} asks for verification only (核验); {what} may not "
            "widen it into data: grant it with --verify"
        )
    check_fields(ev.fields, ev.resource, catalog, verify=ev.for_verification)
    if ev.for_verification and ev.masks:
        raise CommandRefused(
            "a verification grant (核验) delivers no value, so it takes no mask: "
            f"remove the masks on {', '.join(sorted(ev.masks))}"
        )
    wider = sorted(set(ev.fields) - set(app.fields))
    if wider:
        raise CommandRefused(
            f"{what} may narrow the fields applied for, never widen them: "
            f"{', '.join(wider)} not in application {app.id} ({', '.join(app.fields)})"
        )
    res = catalog.resource(ev.resource)
    visible = set(ev.fields) | set(res.fields_of(ShareType.UNCONDITIONAL))
    for fname, spec in ev.masks.items():
        if fname not in visible:
            raise CommandRefused(f"mask on {fname!r}: not a field this consumer receives")
        try:
            check_applicable(parse_mask(spec), res.field(fname).avro_type, fname)
        except ExchangeError as exc:
            raise CommandRefused(f"mask on {fname!r}: {exc}") from None
    if ev.row_filter is not None:
        try:
            row_filter = compile_filter(ev.row_filter, res.field_names())
        except ExchangeError as exc:
            raise CommandRefused(f"row filter refused: {exc}") from None
        hidden = sorted(row_filter.variables & set(res.fields_of(ShareType.NOT_SHARED)))
        if hidden:
            raise CommandRefused(
                f"row filter refused: it reads {', '.join(hidden)}, not shared (不予共享); "
                "which rows arrive would disclose something of it"
            )
    if ev.valid_until is not None and ev.valid_until <= ev.at:
        raise CommandRefused(f"valid-until {beijing.iso(ev.valid_until)} is not in the future")

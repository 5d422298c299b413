"""The catalog on the bus: snapshots on ``gov.ctl.catalog``, newest accepted in force.

A load writes the schemas first (those of the control records too: see
:data:`CONTROL_SCHEMAS`), then one snapshot record holding the whole
catalog. The snapshot is the commit point: a load that fails before it
leaves the catalog in force unchanged (at worst a few schemas are
registered that nothing refers to), so a load is all or nothing.

Signed loads: once the catalog in force names catalog administrators
(目录管理员, ``catalog_admin: true``, each with a ``public_key``), a snapshot
replaces it only if its actor is one of them, its Ed25519 signature over
every other field of the snapshot verifies with that administrator's key,
and its version is newer. Every reader applies :func:`refusal` as it
replays the topic (:func:`current`, :class:`exchange.control.state.ControlState`),
so a snapshot written straight onto the topic by anyone else is ignored.
The first catalog, and any load while the catalog in force names no
administrator, is accepted unsigned.

Production is strict (:func:`unsigned_refusal`): on any bus but the embedded
development broker, a catalog must set ``signatures_required: true`` (every
department registers a public key and signs its commands, a catalog
administrator signs loads), or anyone who can write ``gov.ctl.grants`` could
act as any department. A load of any other catalog there is refused with the
reason, unless it states an override (``unsigned_override``, the reason),
which its ``CATALOG_CHANGED`` entry records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exchange.audit.entry import (
    AUDIT_ENTRY,
    AUDIT_ENTRY_V1,
    AUDIT_ENTRY_V2,
    AUDIT_ENTRY_V3,
    AUDIT_ENTRY_V4,
    AUDIT_ENTRY_V5,
    AUDIT_ENTRY_V6,
    AUDIT_ENTRY_V7,
    AUDIT_ENTRY_V8,
    Action,
    Decision,
    Draft,
    detail_map,
)
from exchange.audit.writer import AuditWriter
from exchange.avro.control_records import CATALOG_SNAPSHOT, CATALOG_SNAPSHOT_V1, ControlCodec
from exchange.avro.schema import check_backward
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.errors import CatalogError, CatalogErrors, CommandRefused, DecodeError
from exchange.sharing.dispute_records import DISPUTE_EVENT
from exchange.sharing.records import GRANT_EVENT, GRANT_EVENT_V1, GRANT_EVENT_V2

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SNAPSHOT = ControlCodec(CATALOG_SNAPSHOT, older=(CATALOG_SNAPSHOT_V1,))
#: the schema of every control record the bus writes, older versions included: each is
#: registered on gov.ctl.schemas by every catalog load and every router start, so the
#: records of a bus written before one was registered resolve too
CONTROL_SCHEMAS = (
    CATALOG_SNAPSHOT_V1,
    CATALOG_SNAPSHOT,
    GRANT_EVENT_V1,
    GRANT_EVENT_V2,
    GRANT_EVENT,
    AUDIT_ENTRY_V1,
    AUDIT_ENTRY_V2,
    AUDIT_ENTRY_V3,
    AUDIT_ENTRY_V4,
    AUDIT_ENTRY_V5,
    AUDIT_ENTRY_V6,
    AUDIT_ENTRY_V7,
    AUDIT_ENTRY_V8,
    AUDIT_ENTRY,
    DISPUTE_EVENT,
)


@dataclass
class CatalogChange:
    """What a load changed, resource by resource (for the operator and the audit log)."""

    version: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    schema_changed: list[str] = field(default_factory=list)
    policy_changed: list[str] = field(default_factory=list)
    #: departments added, removed or changed (names, code, public key, administrator)
    departments_changed: list[str] = field(default_factory=list)
    #: years of the holiday calendar (calendar/<year>.yaml) added, removed or changed
    calendar_changed: list[str] = field(default_factory=list)
    #: service identities (services.yaml: audit head keys) added, removed or changed
    services_changed: list[str] = field(default_factory=list)
    #: settings of workflow.yaml changed (compliance_review, time_limits.<stage>): they apply
    #: to applications made after the load only
    workflow_changed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.schema_changed
            or self.policy_changed
            or self.departments_changed
            or self.calendar_changed
            or self.services_changed
            or self.workflow_changed
        )


@dataclass(frozen=True)
class Snapshot:
    version: int
    loaded_at: dt.datetime
    actor: str
    catalog: Catalog
    digest: str = ""
    #: the catalog exactly as written (the signature covers this text)
    document: str = field(default="", repr=False)
    signature: str | None = None

    def to_avro(self) -> dict[str, Any]:
        """The snapshot record; the signature covers every field but ``signature``."""
        return {
            "version": self.version,
            "loaded_at": self.loaded_at,
            "actor": self.actor,
            "digest": self.digest,
            "document": self.document,
            "signature": self.signature,
        }


def refusal(before: Snapshot | None, new: Snapshot) -> str | None:
    """Why ``new`` may not replace ``before`` as the catalog in force; None if it may.

    The rule every reader of ``gov.ctl.catalog`` applies (see the module doc).
    """
    if before is None:
        return None  # the first catalog ever loaded
    admins = before.catalog.admins()
    if not admins:
        return None  # the catalog in force names no administrator: loads are not signed
    what = f"catalog version {new.version} loaded by {new.actor!r} refused"
    admin = admins.get(new.actor)
    if admin is None or admin.public_key is None:
        return (
            f"{what}: {new.actor!r} is not a catalog administrator (目录管理员) of the catalog "
            f"in force (version {before.version}; administrators: {', '.join(sorted(admins))})"
        )
    if not signing.verify(admin.public_key, new.to_avro(), new.signature):
        return f"{what}: not signed with {new.actor!r}'s registered key" + (
            " (no signature)" if not new.signature else " (the signature does not verify)"
        )
    if new.version <= before.version:
        return (
            f"{what}: version {new.version} is not newer than version {before.version} in "
            "force (a replayed or superseded load)"
        )
    return None


def unsigned_refusal(bus: Connection, snap: Snapshot, override: str | None) -> str | None:
    """Why a catalog without ``signatures_required`` may not be loaded on ``bus``; None if
    it may (it requires signatures, the bus is the embedded development broker, or an
    override with its reason is given)."""
    if snap.catalog.signatures_required or bus.development or (override and override.strip()):
        return None
    return (
        f"catalog version {snap.version} loaded by {snap.actor!r} refused: it does not set "
        "signatures_required: true, and this bus is not the embedded development broker. "
        "Unsigned, anyone who can write gov.ctl.grants can act as any department. Register "
        "a public_key for every department, make one a catalog_admin and set "
        "signatures_required: true in departments.yaml (README: Signed commands); or, "
        "knowingly, load it with an override stating why (exchange catalog load "
        "--allow-unsigned REASON), which the audit log records"
    )


def decode_snapshot(value: bytes) -> Snapshot:
    rec = SNAPSHOT.decode(value)
    return Snapshot(
        version=rec["version"],
        loaded_at=rec["loaded_at"],
        actor=rec["actor"],
        catalog=Catalog.model_validate_json(rec["document"]),
        digest=rec["digest"],
        document=rec["document"],
        signature=rec["signature"],
    )


async def current(bus: Connection) -> Snapshot | None:
    """The catalog in force, or None if none was ever loaded.

    Snapshots that :func:`refusal` refuses are skipped: the one before stays in force.
    """
    latest: Snapshot | None = None
    for rec in await kafka.read_to_end(bus, topics.CATALOG):
        if rec.value is None:
            continue
        try:
            snap = decode_snapshot(rec.value)
        except (DecodeError, ValueError):
            continue  # not a snapshot of ours; never let garbage replace the catalog
        if refusal(latest, snap) is None:
            latest = snap
    return latest


def new_snapshot(
    before: Snapshot | None,
    catalog: Catalog,
    *,
    actor: str,
    signing_key: Ed25519PrivateKey | None = None,
    at: dt.datetime | None = None,
) -> Snapshot:
    """The snapshot that would follow ``before``, signed with ``signing_key`` if given."""
    t = at or dt.datetime.now(dt.UTC)
    document = catalog.model_dump_json(by_alias=True)
    snap = Snapshot(
        version=(before.version + 1) if before else 1,
        # Avro keeps milliseconds: sign exactly what readers will decode
        loaded_at=t.replace(microsecond=t.microsecond // 1000 * 1000),
        actor=actor,
        catalog=catalog,
        digest=hashlib.sha256(document.encode()).hexdigest(),
        document=document,
    )
    if signing_key is None:
        return snap
    return dataclasses.replace(snap, signature=signing.sign(signing_key, snap.to_avro()))


def diff(old: Catalog | None, new: Catalog, version: int) -> CatalogChange:
    change = CatalogChange(version=version)
    old_res = old.resources if old else {}
    for rid, res in new.resources.items():
        before = old_res.get(rid)
        if before is None:
            change.added.append(rid)
            continue
        if before.schema_id != res.schema_id:
            change.schema_changed.append(rid)
        if before.model_dump(exclude={"schema_", "schema_id"}) != res.model_dump(
            exclude={"schema_", "schema_id"}
        ):
            change.policy_changed.append(rid)
    change.removed = sorted(set(old_res) - set(new.resources))
    if old is not None:
        change.departments_changed = sorted(
            d
            for d in set(old.departments) | set(new.departments)
            if old.departments.get(d) != new.departments.get(d)
        )
    old_years = {y.year: y for y in old.calendar} if old else {}
    new_years = {y.year: y for y in new.calendar}
    change.calendar_changed = [
        str(y)
        for y in sorted(set(old_years) | set(new_years))
        if old_years.get(y) != new_years.get(y)
    ]
    old_services = old.services if old else {}
    change.services_changed = sorted(
        sid
        for sid in set(old_services) | set(new.services)
        if old_services.get(sid) != new.services.get(sid)
    )
    if old is not None:
        was = _flat(old.workflow.model_dump())
        now_set = _flat(new.workflow.model_dump())
        change.workflow_changed = sorted(
            k for k in was.keys() | now_set.keys() if was.get(k) != now_set.get(k)
        )
    return change


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"time_limits": {"review": 2}}`` as ``{"time_limits.review": 2}``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_evolution(old: Catalog | None, new: Catalog) -> Catalog:
    """Reject schema changes that are not BACKWARD compatible; carry the schema history."""
    errors: list[CatalogError] = []
    history: dict[str, list[int]] = {}
    for rid, res in new.resources.items():
        before = old.resources.get(rid) if old else None
        past = list(old.schema_history.get(rid, [])) if old else []
        if before is not None and before.schema_id != res.schema_id:
            for reason in check_backward(res.schema_, before.schema_):
                errors.append(
                    CatalogError(
                        f"new schema is not BACKWARD compatible with the version in force "
                        f"(schema id {before.schema_id}): {reason}",
                        resource=rid,
                    )
                )
        if res.schema_id not in past:
            past.append(res.schema_id)
        history[rid] = past
    if errors:
        raise CatalogErrors(errors)
    return new.model_copy(update={"schema_history": history})


async def load(
    bus: Connection,
    catalog: Catalog,
    *,
    actor: str,
    signing_key: Ed25519PrivateKey | None = None,
    partitions: int | None = None,
    unsigned_override: str | None = None,
) -> CatalogChange:
    """Publish a validated catalog as the new one in force; all or nothing.

    ``actor`` is who loads it; once the catalog in force names catalog
    administrators it must be one of them, and ``signing_key`` its private
    key. A load that readers would refuse is refused here, before anything is
    written (:class:`CommandRefused` with the reason, audited as
    ``COMMAND_REFUSED``). So is, outside the embedded development broker, a
    catalog without ``signatures_required: true``, unless ``unsigned_override``
    says why it may be loaded anyway (recorded in the ``CATALOG_CHANGED`` entry
    as ``unsigned_override``; see :func:`unsigned_refusal`).

    The source topic of every resource is created too, so routers and
    publishers find it from the start. The change is audited
    (``CATALOG_CHANGED``, actor ``admin``) once the snapshot is written.
    """
    await kafka.ensure_control_topics(bus)
    before = await current(bus)
    catalog = check_evolution(before.catalog if before else None, catalog)
    snap = new_snapshot(before, catalog, actor=actor, signing_key=signing_key)
    refused = refusal(before, snap) or unsigned_refusal(bus, snap, unsigned_override)
    if refused is not None:
        await _audit_refusal(bus, snap, refused)
        raise CommandRefused(refused)
    version = snap.version
    change = diff(before.catalog if before else None, catalog, version)
    registry = SchemaRegistry(bus)
    await registry.refresh()
    async with kafka.producer(bus, linger_ms=0, compression_type="gzip") as producer:
        await registry.register_all(producer, CONTROL_SCHEMAS)
        if (
            before is not None
            and change.empty
            and before.catalog.schema_history == catalog.schema_history
        ):
            change.version = before.version
            return change  # nothing to do: loading the same catalog twice is harmless
        await registry.register_all(producer, (r.schema_ for r in catalog.resources.values()))
        await producer.send_and_wait(
            topics.CATALOG, key=b"catalog", value=SNAPSHOT.encode(snap.to_avro())
        )
        async with AuditWriter(producer, registry, role="admin") as audit:
            await audit.write(
                Draft(
                    Action.CATALOG_CHANGED,
                    actor="admin",
                    decision=Decision.CHANGED,
                    details=detail_map(
                        version=version,
                        loaded_by=actor,
                        signed=snap.signature is not None,
                        signatures_required=catalog.signatures_required,
                        unsigned_override=(
                            unsigned_override.strip()
                            if unsigned_override
                            and not catalog.signatures_required
                            and not bus.development
                            else None
                        ),
                        digest=snap.digest,
                        resources=len(catalog.resources),
                        added=change.added or None,
                        removed=change.removed or None,
                        schema_changed=change.schema_changed or None,
                        policy_changed=change.policy_changed or None,
                        departments_changed=change.departments_changed or None,
                        calendar_changed=change.calendar_changed or None,
                        services_changed=change.services_changed or None,
                        workflow_changed=change.workflow_changed or None,
                    ),
                )
            )
    await source_topics(bus, catalog, before.catalog if before else None, partitions=partitions)
    return change


def source_retention(catalog: Catalog) -> dict[str, int]:
    """Retention (ms, -1 for ever) of the source topics whose resource sets one."""
    return {
        topics.source(r.provider, r.id): (
            -1 if r.source_retention_days == -1 else r.source_retention_days * 24 * 3600 * 1000
        )
        for r in catalog.resources.values()
        if r.source_retention_days is not None
    }


async def source_topics(
    bus: Connection, catalog: Catalog, before: Catalog | None, *, partitions: int | None = None
) -> None:
    """Create the source topic of every resource with its retention (the catalog's, else the
    platform's), and set it anew on the existing ones whose resource changed it."""
    policy = bus.topics.with_sources(source_retention(catalog))
    placed = bus.with_topics(policy)
    await kafka.ensure_topics(
        placed,
        [topics.source(r.provider, r.id) for r in catalog.resources.values()],
        partitions=partitions,
    )
    changed = [
        topics.source(r.provider, r.id)
        for r in catalog.resources.values()
        if before is not None
        and r.id in before.resources
        and before.resources[r.id].source_retention_days != r.source_retention_days
    ]
    if changed:
        await kafka.reconfigure_topics(placed, changed)


def refusal_draft(snap: Snapshot, reason: str, **details: object) -> Draft:
    """The ``COMMAND_REFUSED`` audit entry of a refused catalog snapshot (actor: who tried)."""
    return Draft(
        Action.COMMAND_REFUSED,
        actor=snap.actor,
        decision=Decision.DENIED,
        reason=reason,
        details=detail_map(
            command="catalog load",
            version=snap.version,
            digest=snap.digest,
            signed=snap.signature is not None,
            **details,
        ),
    )


async def _audit_refusal(bus: Connection, snap: Snapshot, reason: str) -> None:
    """Audit a load refused before writing."""
    registry = SchemaRegistry(bus)
    await registry.refresh()
    async with (
        kafka.producer(bus, linger_ms=0) as producer,
        AuditWriter(producer, registry, role="admin") as audit,  # its stop signs the head
    ):
        await audit.write(refusal_draft(snap, reason, resources=len(snap.catalog.resources)))

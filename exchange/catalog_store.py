"""The catalog on the bus: snapshots on ``gov.ctl.catalog``, newest in force.

A load writes the schemas first, then one snapshot record holding the whole
catalog. The snapshot is the commit point: a load that fails before it
leaves the catalog in force unchanged (at worst a few schemas are
registered that nothing refers to), so a load is all or nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from exchange import kafka, topics
from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.writer import AuditWriter
from exchange.catalog import Catalog
from exchange.control_records import CATALOG_SNAPSHOT, ControlCodec
from exchange.errors import CatalogError, CatalogErrors, DecodeError
from exchange.registry import SchemaRegistry
from exchange.schema import check_backward

SNAPSHOT = ControlCodec(CATALOG_SNAPSHOT)


@dataclass
class CatalogChange:
    """What a load changed, resource by resource (for the operator and the audit log)."""

    version: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    schema_changed: list[str] = field(default_factory=list)
    policy_changed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.schema_changed or self.policy_changed)


@dataclass(frozen=True)
class Snapshot:
    version: int
    loaded_at: dt.datetime
    actor: str
    catalog: Catalog


async def ensure_control_topics(bootstrap: str, replication_factor: int = 1) -> None:
    await kafka.ensure_topics(
        bootstrap,
        topics.CONTROL_TOPICS,
        partitions=1,
        replication_factor=replication_factor,
        compacted=[topics.SCHEMAS],
    )


def decode_snapshot(value: bytes) -> Snapshot:
    rec = SNAPSHOT.decode(value)
    return Snapshot(
        version=rec["version"],
        loaded_at=rec["loaded_at"],
        actor=rec["actor"],
        catalog=Catalog.model_validate_json(rec["document"]),
    )


async def current(bootstrap: str) -> Snapshot | None:
    """The catalog in force, or None if none was ever loaded."""
    latest: Snapshot | None = None
    for rec in await kafka.read_to_end(bootstrap, topics.CATALOG):
        try:
            latest = decode_snapshot(rec.value)
        except (DecodeError, ValueError):
            continue  # not a snapshot of ours; never let garbage replace the catalog
    return latest


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
    return change


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
    bootstrap: str, catalog: Catalog, *, actor: str, partitions: int = 3
) -> CatalogChange:
    """Publish a validated catalog as the new one in force; all or nothing.

    The source topic of every resource is created too, so routers and
    publishers find it from the start. The change is audited
    (``CATALOG_CHANGED``, actor ``admin``) once the snapshot is written.
    """
    await ensure_control_topics(bootstrap)
    before = await current(bootstrap)
    catalog = check_evolution(before.catalog if before else None, catalog)
    version = (before.version + 1) if before else 1
    change = diff(before.catalog if before else None, catalog, version)
    if (
        before is not None
        and change.empty
        and before.catalog.schema_history == catalog.schema_history
    ):
        change.version = before.version
        return change  # nothing to do: loading the same catalog twice is harmless
    registry = SchemaRegistry(bootstrap)
    await registry.refresh()
    document = catalog.model_dump_json(by_alias=True)
    async with kafka.producer(bootstrap, linger_ms=0, compression_type="gzip") as producer:
        await registry.register(producer, CATALOG_SNAPSHOT)
        for res in catalog.resources.values():
            await registry.register(producer, res.schema_)
        digest = hashlib.sha256(document.encode()).hexdigest()
        await producer.send_and_wait(
            topics.CATALOG,
            key=b"catalog",
            value=SNAPSHOT.encode(
                {
                    "version": version,
                    "loaded_at": dt.datetime.now(dt.UTC),
                    "actor": actor,
                    "digest": digest,
                    "document": document,
                }
            ),
        )
        await AuditWriter(producer, registry, role="admin").write(
            Draft(
                Action.CATALOG_CHANGED,
                actor="admin",
                decision=Decision.CHANGED,
                details=detail_map(
                    version=version,
                    loaded_by=actor,
                    digest=digest,
                    resources=len(catalog.resources),
                    added=change.added or None,
                    removed=change.removed or None,
                    schema_changed=change.schema_changed or None,
                    policy_changed=change.policy_changed or None,
                ),
            )
        )
    await kafka.ensure_topics(
        bootstrap,
        [topics.source(r.provider, r.id) for r in catalog.resources.values()],
        partitions=partitions,
    )
    return change

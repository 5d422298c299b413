"""Signed catalog loads on the real broker: a forged snapshot changes no reader's catalog.

The module's first load names health as the only catalog administrator (目录管理员).
From then on a snapshot written straight onto ``gov.ctl.catalog`` by anyone without
health's key is ignored by a fresh ``state.load``, by ``catalog_store.current`` and by
a ``ControlFollower`` that is running when it arrives; health's signed load is
accepted; a load by another department is refused before anything is written, and
audited; ``exchange catalog load --as ADMIN --key FILE`` signs. Every test asserts on what the readers read, relative to the catalog in force
when it starts. At the end the administrators are removed again by a signed load, so a
shared cluster (EXCHANGE_BOOTSTRAP_SERVERS) is left open to the modules after this one.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from routing_support import running_router
from typer.testing import CliRunner, Result

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.log import entries_only, read_log
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.cli import app
from exchange.control import catalog_store, state
from exchange.control.catalog_store import SNAPSHOT, Snapshot, new_snapshot
from exchange.control.state import ControlFollower, ControlState
from exchange.errors import CommandRefused

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="module")
def keys() -> dict[str, Ed25519PrivateKey]:
    return {d: Ed25519PrivateKey.generate() for d in ("health", "police")}


def keyed(catalog: Catalog, keys: dict[str, Ed25519PrivateKey], *, admins: set[str]) -> Catalog:
    """``catalog`` with every key registered and ``admins`` as catalog administrators."""
    return catalog.with_keys({d: signing.public_key_of(k) for d, k in keys.items()}, admins=admins)


def without(catalog: Catalog, resource: str) -> Catalog:
    return catalog.model_copy(
        update={"resources": {r: v for r, v in catalog.resources.items() if r != resource}}
    )


@pytest.fixture(scope="module")
async def admin_catalog(
    bus: Connection, sample_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> AsyncIterator[Catalog]:
    catalog = keyed(sample_catalog, keys, admins={"health"})
    # accepted unsigned if no catalog, or one without administrators, is in force
    await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")
    yield catalog
    # hand the bus back without administrators (a signed load, as any change now needs)
    await catalog_store.load(
        bus,
        keyed(sample_catalog, keys, admins=set()),
        actor="health",
        signing_key=keys["health"],
        unsigned_override="test suite",
    )


async def in_force(bus: Connection) -> Snapshot:
    snap = await catalog_store.current(bus)
    assert snap is not None, "no catalog in force"
    return snap


async def write_snapshot(bus: Connection, snap: Snapshot) -> None:
    """Write a snapshot straight onto gov.ctl.catalog, as anyone with write access could."""
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(
            topics.CATALOG, key=b"catalog", value=SNAPSHOT.encode(snap.to_avro())
        )


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_forged_snapshots_are_ignored_by_every_reader(
    bus: Connection,
    admin_catalog: Catalog,
    sample_catalog: Catalog,
    keys: dict[str, Ed25519PrivateKey],
) -> None:
    before = await in_force(bus)
    assert before.catalog.admins().keys() == {"health"}
    follower = ControlFollower(ControlState(bus))
    refused: list[tuple[Snapshot, str]] = []
    follower.state.on_catalog_refused = lambda snap, reason: refused.append((snap, reason))
    await follower.start()
    try:
        # the forgeries drop a resource and the administrators, and make police one
        taken_over = without(keyed(sample_catalog, keys, admins={"police"}), BMC)
        forgeries = [
            new_snapshot(before, taken_over, actor="health"),  # unsigned
            new_snapshot(before, taken_over, actor="health", signing_key=keys["police"]),
            new_snapshot(before, taken_over, actor="police", signing_key=keys["police"]),
        ]
        for forged in forgeries:
            await write_snapshot(bus, forged)

        await wait_for(lambda: len(refused) == len(forgeries), "the follower to refuse them")
        reasons = [reason for _, reason in refused]
        assert "(no signature)" in reasons[0]
        assert "does not verify" in reasons[1]
        assert "'police' is not a catalog administrator" in reasons[2]
        assert [s.signature for s, _ in refused] == [f.signature for f in forgeries]

        for reader, snap in (
            ("running ControlFollower", follower.state.snapshot),
            ("fresh state.load", (await state.load(bus)).snapshot),
            ("catalog_store.current", await catalog_store.current(bus)),
        ):
            assert snap is not None, reader
            assert (snap.version, snap.digest) == (before.version, before.digest), reader
            assert BMC in snap.catalog.resources, reader
            assert snap.catalog.admins().keys() == {"health"}, reader
    finally:
        await follower.stop()


async def test_a_running_router_audits_a_forged_snapshot_once(
    bus: Connection,
    admin_catalog: Catalog,
    sample_catalog: Catalog,
    keys: dict[str, Ed25519PrivateKey],
) -> None:
    before = await in_force(bus)
    forged = new_snapshot(before, without(admin_catalog, BMC), actor="police")  # unsigned
    async with running_router(bus) as run:
        await write_snapshot(bus, forged)
        await write_snapshot(bus, forged)  # the same forgery again: one entry

        def by_router(entries: list[AuditEntry]) -> list[AuditEntry]:
            return [
                e
                for e in entries
                if e.action is Action.COMMAND_REFUSED
                and (e.details or {}).get("noticed_by") == "router replaying gov.ctl.catalog"
                and (e.details or {}).get("digest") == forged.digest
            ]

        found: list[AuditEntry] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not found and loop.time() < deadline:
            await asyncio.sleep(0.3)
            found = by_router([e for _, e in entries_only(await read_log(bus))])
        assert len(found) == 1, "the router audits a forged catalog snapshot exactly once"
        assert found[0].actor == "police"
        assert "catalog administrator" in (found[0].reason or "")
        assert BMC in run.router.state.catalog.resources  # and keeps the catalog in force
        run.check_alive()


async def test_a_signed_load_by_the_administrator_is_accepted(
    bus: Connection, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    before = await in_force(bus)
    follower = ControlFollower(ControlState(bus))
    await follower.start()
    try:
        smaller = without(before.catalog, "marriage_registration")
        change = await catalog_store.load(
            bus, smaller, actor="health", signing_key=keys["health"], unsigned_override="test suite"
        )
        assert change.version == before.version + 1
        assert change.removed == ["marriage_registration"]

        after = await in_force(bus)
        assert after.version == change.version
        assert after.actor == "health"
        assert after.signature is not None
        assert "marriage_registration" not in after.catalog.resources
        fresh = (await state.load(bus)).snapshot
        assert fresh is not None
        assert (fresh.version, fresh.digest) == (after.version, after.digest)
        await wait_for(
            lambda: (
                follower.state.snapshot is not None
                and follower.state.snapshot.version == after.version
            ),
            "the follower to take the new catalog",
        )
        assert "marriage_registration" not in follower.state.catalog.resources
    finally:
        await follower.stop()
        # put the resource back (signed), so the tests do not depend on their order
        await catalog_store.load(
            bus,
            before.catalog,
            actor="health",
            signing_key=keys["health"],
            unsigned_override="test suite",
        )


async def test_a_load_by_another_department_is_refused_up_front_and_audited(
    bus: Connection, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    before = await in_force(bus)
    records = len(await kafka.read_to_end(bus, topics.CATALOG))
    changed = without(before.catalog, BMC)

    with pytest.raises(CommandRefused, match="'police' is not a catalog administrator"):
        await catalog_store.load(
            bus, changed, actor="police", signing_key=keys["police"], unsigned_override="test suite"
        )
    with pytest.raises(CommandRefused, match=r"not signed with 'health'.*no signature"):
        await catalog_store.load(bus, changed, actor="health", unsigned_override="test suite")

    assert len(await kafka.read_to_end(bus, topics.CATALOG)) == records  # nothing written
    after = await in_force(bus)
    assert (after.version, after.digest) == (before.version, before.digest)
    assert BMC in after.catalog.resources

    entries: list[AuditEntry] = [e for _, e in entries_only(await read_log(bus))]
    refusals = [
        e
        for e in entries
        if e.action is Action.COMMAND_REFUSED
        and e.details.get("command") == "catalog load"
        and e.details.get("version") == str(before.version + 1)
    ]
    by_actor = {e.actor: e for e in refusals}
    assert by_actor.keys() >= {"police", "health"}
    assert by_actor["police"].reason is not None
    assert "not a catalog administrator" in by_actor["police"].reason
    assert by_actor["police"].details["signed"] == "true"
    assert by_actor["health"].details["signed"] == "false"


def write_key(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def invoke(*args: str, env: dict[str, str | None]) -> Result:
    """Run the CLI in-process, in a worker thread (the command calls asyncio.run)."""

    def go() -> Result:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(go).result(timeout=60)


async def test_the_cli_signs_a_load_with_the_administrators_key(
    bus: Connection, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey], tmp_path: Path
) -> None:
    before = await in_force(bus)
    directory = Path(shutil.copytree(SCHEMAS, tmp_path / "schemas"))
    (directory / "resources" / "marriage_registration.yaml").unlink()
    path = directory / "departments.yaml"
    text = path.read_text(encoding="utf-8")
    for dept, extra in (("health", "\n    catalog_admin: true"), ("police", "")):
        code = before.catalog.departments[dept].code
        public = signing.public_key_of(keys[dept])
        text = text.replace(f'code: "{code}"', f'code: "{code}"\n    public_key: "{public}"{extra}')
    path.write_text(text, encoding="utf-8")
    health_pem = write_key(keys["health"], tmp_path / "health.pem")
    police_pem = write_key(keys["police"], tmp_path / "police.pem")
    env: dict[str, str | None] = {
        **bus.environment(),
        "EXCHANGE_KEY_FILE": None,
    }
    load = ("catalog", "load", str(directory), "--allow-unsigned", "test suite")
    try:
        refused = invoke(*load, "--as", "police", "--key", str(police_pem), env=env)
        assert refused.exit_code == 2
        assert "'police' is not a catalog administrator" in refused.stderr
        unsigned = invoke(*load, "--as", "health", env=env)
        assert unsigned.exit_code == 2
        assert "no signature" in unsigned.stderr
        assert (await in_force(bus)).digest == before.digest

        signed = invoke(*load, "--as", "health", env={**env, "EXCHANGE_KEY_FILE": str(health_pem)})
        assert signed.exit_code == 0, signed.stderr
        assert f"catalog version {before.version + 1} loaded" in signed.stdout
        assert "signed by health" in signed.stdout
        assert "removed: marriage_registration" in signed.stdout
        after = await in_force(bus)
        assert after.version == before.version + 1
        assert "marriage_registration" not in after.catalog.resources
    finally:
        await catalog_store.load(
            bus,
            before.catalog,
            actor="health",
            signing_key=keys["health"],
            unsigned_override="test suite",
        )

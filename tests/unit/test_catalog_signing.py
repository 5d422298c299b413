"""Signed catalog loads: once the catalog in force names administrators, only their signed
loads replace it. The rule (catalog_store.refusal), the snapshot record and ControlState."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.avro.control_records import CATALOG_SNAPSHOT_V1, ControlCodec
from exchange.bus import topics
from exchange.catalog import signing
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.control.catalog_store import (
    SNAPSHOT,
    Snapshot,
    decode_snapshot,
    new_snapshot,
    refusal,
)
from exchange.control.state import ControlState
from exchange.errors import CatalogErrors

SAMPLE = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {d: Ed25519PrivateKey.generate() for d in ("health", "police")}


def with_admins(
    catalog: Catalog, keys: dict[str, Ed25519PrivateKey], admins: tuple[str, ...]
) -> Catalog:
    """``catalog`` with every key registered and ``admins`` as catalog administrators."""
    return catalog.with_keys({d: signing.public_key_of(k) for d, k in keys.items()}, admins=admins)


@pytest.fixture
def admin_catalog(sample_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]) -> Catalog:
    return with_admins(sample_catalog, keys, ("health",))


@pytest.fixture
def in_force(admin_catalog: Catalog) -> Snapshot:
    """Version 1, naming health as the only catalog administrator."""
    return new_snapshot(None, admin_catalog, actor="bus")


def test_the_first_catalog_is_accepted_unsigned(admin_catalog: Catalog) -> None:
    assert refusal(None, new_snapshot(None, admin_catalog, actor="anyone")) is None


def test_loads_are_unsigned_while_the_catalog_in_force_names_no_administrator(
    sample_catalog: Catalog, admin_catalog: Catalog
) -> None:
    before = new_snapshot(None, sample_catalog, actor="ops")
    assert not sample_catalog.admins()
    assert refusal(before, new_snapshot(before, admin_catalog, actor="someone")) is None


def test_a_signed_load_by_an_administrator_is_accepted(
    in_force: Snapshot, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    snap = new_snapshot(in_force, admin_catalog, actor="health", signing_key=keys["health"])
    assert snap.version == 2
    assert refusal(in_force, snap) is None


def test_a_load_by_a_department_that_is_not_an_administrator_is_refused(
    in_force: Snapshot, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Police has a registered key and signs with it, but is not a catalog administrator."""
    snap = new_snapshot(in_force, admin_catalog, actor="police", signing_key=keys["police"])
    reason = refusal(in_force, snap)
    assert reason is not None
    assert "'police' is not a catalog administrator" in reason
    assert "administrators: health" in reason


def test_an_unsigned_load_by_an_administrator_is_refused(
    in_force: Snapshot, admin_catalog: Catalog
) -> None:
    reason = refusal(in_force, new_snapshot(in_force, admin_catalog, actor="health"))
    assert reason is not None
    assert "not signed with 'health'" in reason
    assert "no signature" in reason


def test_a_load_in_an_administrators_name_signed_with_another_key_is_refused(
    in_force: Snapshot, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    snap = new_snapshot(in_force, admin_catalog, actor="health", signing_key=keys["police"])
    reason = refusal(in_force, snap)
    assert reason is not None
    assert "does not verify" in reason


def test_a_signed_load_altered_after_signing_is_refused(
    in_force: Snapshot,
    admin_catalog: Catalog,
    sample_catalog: Catalog,
    keys: dict[str, Ed25519PrivateKey],
) -> None:
    good = new_snapshot(in_force, admin_catalog, actor="health", signing_key=keys["health"])
    # the administrators dropped from the document, signature kept
    document = sample_catalog.model_dump_json(by_alias=True)
    altered = dataclasses.replace(good, catalog=sample_catalog, document=document)
    reason = refusal(in_force, altered)
    assert reason is not None
    assert "does not verify" in reason


def test_a_replayed_older_signed_load_is_refused(
    in_force: Snapshot, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    v2 = new_snapshot(in_force, admin_catalog, actor="health", signing_key=keys["health"])
    v3 = new_snapshot(v2, admin_catalog, actor="health", signing_key=keys["health"])
    assert refusal(v2, v3) is None
    reason = refusal(v3, v2)  # v2 written again after v3
    assert reason is not None
    assert "version 2 is not newer than version 3" in reason


def test_the_administrators_of_the_catalog_in_force_decide_not_the_new_ones(
    in_force: Snapshot, sample_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """A catalog naming police as administrator does not let police load it."""
    police_admin = with_admins(sample_catalog, keys, ("police",))
    snap = new_snapshot(in_force, police_admin, actor="police", signing_key=keys["police"])
    assert "not a catalog administrator" in (refusal(in_force, snap) or "")
    # health may hand the role over; police's loads are accepted from then on
    handed = new_snapshot(in_force, police_admin, actor="health", signing_key=keys["health"])
    assert refusal(in_force, handed) is None
    by_police = new_snapshot(handed, police_admin, actor="police", signing_key=keys["police"])
    assert refusal(handed, by_police) is None


def test_the_signature_survives_the_avro_record(
    in_force: Snapshot, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    snap = new_snapshot(
        in_force,
        admin_catalog,
        actor="health",
        signing_key=keys["health"],
        at=dt.datetime(2026, 11, 26, 2, 0, 0, 123456, tzinfo=dt.UTC),
    )
    decoded = decode_snapshot(SNAPSHOT.encode(snap.to_avro()))
    assert decoded.signature == snap.signature
    assert decoded.loaded_at == snap.loaded_at
    assert decoded.catalog.admins().keys() == {"health"}
    assert refusal(in_force, decoded) is None


def test_snapshots_written_before_loads_were_signed_still_decode(
    sample_catalog: Catalog,
) -> None:
    old = new_snapshot(None, sample_catalog, actor="ops")
    record = {k: v for k, v in old.to_avro().items() if k != "signature"}
    value = ControlCodec(CATALOG_SNAPSHOT_V1).encode(record)
    decoded = decode_snapshot(value)
    assert decoded.signature is None
    assert decoded.version == 1
    assert decoded.catalog.departments.keys() == sample_catalog.departments.keys()


def test_control_state_keeps_the_catalog_in_force_and_reports_refused_snapshots(
    in_force: Snapshot, admin_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    forged = new_snapshot(in_force, admin_catalog, actor="health", signing_key=keys["police"])
    good = new_snapshot(in_force, admin_catalog, actor="health", signing_key=keys["health"])
    state = ControlState("unused:9092")
    accepted: list[int] = []
    refused: list[tuple[Snapshot, str]] = []
    state.on_catalog = lambda snap: accepted.append(snap.version)
    state.on_catalog_refused = lambda snap, reason: refused.append((snap, reason))
    for offset, snap in enumerate((in_force, forged, good)):
        rec = SimpleNamespace(
            topic=topics.CATALOG, value=SNAPSHOT.encode(snap.to_avro()), offset=offset
        )
        state.handle(rec)
        if snap is forged:
            assert state.snapshot is not None
            assert state.snapshot.version == 1  # the forgery did not replace version 1
    assert accepted == [1, 2]
    assert state.snapshot is not None
    assert state.snapshot.signature == good.signature
    assert [(s.actor, s.signature) for s, _ in refused] == [("health", forged.signature)]
    assert "does not verify" in refused[0][1]


def test_an_administrator_without_a_public_key_is_a_catalog_error(tmp_path: Path) -> None:
    directory = Path(shutil.copytree(SAMPLE, tmp_path / "schemas"))
    path = directory / "departments.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            'code: "11330000002482146U"', 'code: "11330000002482146U"\n    catalog_admin: true'
        ),
        encoding="utf-8",
    )
    with pytest.raises(CatalogErrors) as exc:
        load_catalog(directory)
    message = str(exc.value)
    assert "schemas/departments.yaml:" in message
    assert "department 'civil_affairs' is a catalog administrator" in message
    assert "no public_key" in message


def test_an_administrator_with_a_public_key_is_valid(
    tmp_path: Path, keys: dict[str, Ed25519PrivateKey]
) -> None:
    directory = Path(shutil.copytree(SAMPLE, tmp_path / "schemas"))
    path = directory / "departments.yaml"
    public = signing.public_key_of(keys["health"])
    text = path.read_text(encoding="utf-8").replace(
        'code: "113300000024823731"',
        f'code: "113300000024823731"\n    catalog_admin: true\n    public_key: "{public}"',
    )
    path.write_text(text, encoding="utf-8")
    assert load_catalog(directory).admins().keys() == {"health"}


def _departments_file(tmp_path: Path, keys: dict[str, Ed25519PrivateKey], head: str) -> Path:
    """The sample catalog copied, with ``head`` at the top of departments.yaml and the
    keys of ``keys`` registered (health as catalog administrator)."""
    root = tmp_path / "catalog"
    shutil.copytree(SAMPLE, root)
    path = root / "departments.yaml"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        lines.append(line)
        if line.startswith("  - id: "):
            dept = line.removeprefix("  - id: ").strip()
            if dept in keys:
                lines.append(f"    public_key: {signing.public_key_of(keys[dept])}")
            if dept == "health":
                lines.append("    catalog_admin: true")
    path.write_text(head + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_signatures_required_needs_every_department_keyed(
    tmp_path: Path, keys: dict[str, Ed25519PrivateKey]
) -> None:
    root = _departments_file(tmp_path, keys, "signatures_required: true")  # health, police
    with pytest.raises(CatalogErrors) as exc:
        load_catalog(root)
    message = str(exc.value)
    assert "departments.yaml" in message
    assert "no public_key: civil_affairs, hrss, market" in message


def test_signatures_required_with_every_key_registered(tmp_path: Path) -> None:
    every = {
        d: Ed25519PrivateKey.generate()
        for d in ("police", "civil_affairs", "health", "hrss", "market")
    }
    catalog = load_catalog(_departments_file(tmp_path, every, "signatures_required: true"))
    assert catalog.signatures_required
    assert all(d.public_key for d in catalog.departments.values())
    # and it survives the trip through a snapshot on the bus
    snap = decode_snapshot(SNAPSHOT.encode(new_snapshot(None, catalog, actor="health").to_avro()))
    assert snap.catalog.signatures_required


def test_signatures_required_must_be_a_boolean(
    tmp_path: Path, keys: dict[str, Ed25519PrivateKey]
) -> None:
    with pytest.raises(CatalogErrors, match=r"departments.yaml:1.*true or false, not 'yes please'"):
        load_catalog(_departments_file(tmp_path, keys, "signatures_required: yes please"))


def test_signatures_required_needs_a_catalog_administrator(sample_catalog: Catalog) -> None:
    every = {d: Ed25519PrivateKey.generate() for d in sample_catalog.departments}
    keyed = with_admins(sample_catalog, every, admins=())
    with pytest.raises(ValueError, match="no department is a catalog_admin"):
        Catalog(
            departments=dict(keyed.departments),
            resources=dict(keyed.resources),
            signatures_required=True,
        )


def test_outside_development_an_unsigned_catalog_needs_an_override(
    sample_catalog: Catalog,
) -> None:
    """Issue 23 item 2: the production path is strict, the development broker easy."""
    from exchange.bus.connection import Connection
    from exchange.control.catalog_store import new_snapshot, unsigned_refusal

    snap = new_snapshot(None, sample_catalog, actor="ops")
    production = Connection("k1:9092")
    development = Connection("127.0.0.1:9092", idempotence=False, development=True)
    reason = unsigned_refusal(production, snap, None)
    assert reason is not None
    assert "signatures_required: true" in reason
    assert "--allow-unsigned" in reason
    assert unsigned_refusal(production, snap, "   ") == reason  # a blank reason is none
    assert unsigned_refusal(production, snap, "keys come next week") is None
    assert unsigned_refusal(development, snap, None) is None

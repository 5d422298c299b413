"""Signed commands: a department with a registered key must sign; a forgery is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.errors import CommandRefused
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import EventKind, GrantEvent

BMC = "birth_medical_certificate"
T0 = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {d: Ed25519PrivateKey.generate() for d in ("police", "health")}


@pytest.fixture
def catalog(sample_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]) -> Catalog:
    depts = dict(sample_catalog.departments)
    for d, k in keys.items():
        depts[d] = depts[d].model_copy(update={"public_key": signing.public_key_of(k)})
    return sample_catalog.model_copy(update={"departments": depts})


def signed(ev: GrantEvent, key: Ed25519PrivateKey) -> GrantEvent:
    return dataclasses.replace(ev, signature=signing.sign(key, ev.signed_fields()))


def application() -> GrantEvent:
    return GrantEvent(
        kind=EventKind.APPLIED,
        actor="police",
        consumer="police",
        resource=BMC,
        application_id="APP-1",
        fields=("mother_name",),
        purpose="落户 registration",
        at=T0,
    )


def approval(actor: str = "health") -> GrantEvent:
    return GrantEvent(
        kind=EventKind.APPROVED,
        actor=actor,
        consumer="police",
        resource=BMC,
        application_id="APP-1",
        grant_id="GR-1",
        fields=("mother_name",),
        at=T0 + dt.timedelta(hours=1),
    )


def test_signed_commands_are_accepted(catalog: Catalog, keys: dict[str, Ed25519PrivateKey]) -> None:
    book = GrantBook()
    assert book.apply(signed(application(), keys["police"]), catalog) is None
    assert book.apply(signed(approval(), keys["health"]), catalog) is None
    assert "GR-1" in book.grants


def test_an_unsigned_command_of_a_department_with_a_key_is_refused(
    catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    book = GrantBook()
    reason = book.apply(application(), catalog)
    assert reason is not None
    assert "not signed with 'police'" in reason
    assert "no signature" in reason
    assert not book.applications


def test_a_forged_approval_from_the_provider_is_refused(
    catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Police writes an approval 'from' health, signed with police's own key."""
    book = GrantBook()
    book.apply(signed(application(), keys["police"]), catalog)
    forged = signed(approval(actor="health"), keys["police"])
    reason = book.apply(forged, catalog)
    assert reason is not None
    assert "does not verify" in reason
    assert not book.grants


def test_a_signed_command_altered_after_signing_is_refused(
    catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    book = GrantBook()
    book.apply(signed(application(), keys["police"]), catalog)
    good = signed(approval(), keys["health"])
    widened = dataclasses.replace(good, masks={}, fields=("mother_name", "address"))
    with pytest.raises(CommandRefused, match="does not verify"):
        book.check(widened, catalog)


def test_departments_without_a_key_are_trusted_by_name(sample_catalog: Catalog) -> None:
    book = GrantBook()
    assert book.apply(application(), sample_catalog) is None


def test_a_bad_public_key_in_the_catalog_is_refused(sample_catalog: Catalog) -> None:
    from pydantic import ValidationError

    police = sample_catalog.departments["police"]
    with pytest.raises(ValidationError, match="Ed25519 key has 32"):
        police.model_validate({**police.model_dump(), "public_key": "AAAA"})


def test_key_files_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pem, public = signing.generate()
    path = tmp_path / "police.pem"
    path.write_bytes(pem)
    key = signing.load_private_key(path)
    assert signing.public_key_of(key) == public
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(signing.SigningError, match=r"bad\.pem"):
        signing.load_private_key(tmp_path / "bad.pem")

"""No built-in mask secret: production routers refuse to start without one (issue 23 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.cli import app
from exchange.router import mask_secret
from exchange.router.loop import Router
from exchange.router.mask_secret import PUBLIC_SECRETS, MaskSecretError
from exchange.router.view import compile_view
from exchange.settings import Settings
from exchange.sharing.policy import View

PRODUCTION = Connection("k1:9092")
DEVELOPMENT = Connection("127.0.0.1:9092", idempotence=False, development=True)
OLD_DEFAULT = next(iter(PUBLIC_SECRETS)).decode()
GOOD = "a-configured-mask-secret-of-40-characters"


def test_the_settings_have_no_default_mask_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGE_MASK_SECRET", raising=False)
    assert Settings().mask_secret is None


@pytest.mark.parametrize("configured", [None, "", OLD_DEFAULT])
def test_outside_development_no_secret_or_the_old_default_is_refused(
    configured: str | None, tmp_path: Path
) -> None:
    with pytest.raises(MaskSecretError) as caught:
        mask_secret.resolve(configured, PRODUCTION, tmp_path)
    assert "EXCHANGE_MASK_SECRET" in str(caught.value)
    assert "secrets.token_urlsafe(32)" in str(caught.value)  # says how to set one
    assert not (tmp_path / "mask-secrets").exists()


def test_a_short_secret_is_refused_everywhere(tmp_path: Path) -> None:
    for bus in (PRODUCTION, DEVELOPMENT):
        with pytest.raises(MaskSecretError, match="fewer than 16"):
            mask_secret.resolve("short", bus, tmp_path)


def test_a_configured_secret_is_used_as_it_is(tmp_path: Path) -> None:
    for bus in (PRODUCTION, DEVELOPMENT):
        secret = mask_secret.resolve(GOOD, bus, tmp_path)
        assert secret.value == GOOD.encode()
        assert secret.origin == "EXCHANGE_MASK_SECRET"
        assert GOOD not in secret.fingerprint
        assert len(secret.fingerprint) == 16


@pytest.mark.parametrize("configured", [None, OLD_DEFAULT])
def test_on_the_development_broker_a_random_secret_is_made_once_per_bus(
    configured: str | None, tmp_path: Path
) -> None:
    first = mask_secret.resolve(configured, DEVELOPMENT, tmp_path)
    assert first.value not in PUBLIC_SECRETS
    assert len(first.value) == 64
    assert "random mask secret" in first.origin  # and says so
    again = mask_secret.resolve(configured, DEVELOPMENT, tmp_path)
    assert again.value == first.value  # every router of the bus hashes alike
    path = mask_secret.dev_secret_path(tmp_path, DEVELOPMENT)
    assert path.stat().st_mode & 0o777 == 0o600
    other = Connection("127.0.0.1:9093", idempotence=False, development=True)
    assert mask_secret.resolve(configured, other, tmp_path).value != first.value
    elsewhere = mask_secret.resolve(configured, DEVELOPMENT, tmp_path / "other-state")
    assert elsewhere.value != first.value


def test_a_router_refuses_the_public_secret_outside_development() -> None:
    with pytest.raises(MaskSecretError, match="public"):
        Router(PRODUCTION, master_secret=OLD_DEFAULT.encode())
    Router(DEVELOPMENT, master_secret=OLD_DEFAULT.encode())  # a development bus may


def test_the_router_command_refuses_to_start_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("EXCHANGE_MASK_SECRET", "EXCHANGE_DEVELOPMENT", "EXCHANGE_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXCHANGE_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["router", "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "no mask secret" in result.stderr
    assert "EXCHANGE_MASK_SECRET" in result.stderr


def test_a_view_that_hashes_names_its_key_by_fingerprint(sample_catalog: Catalog) -> None:
    """What RECORDS_DELIVERED audits as mask_key: it changes when the secret is rotated."""
    res = sample_catalog.resource("birth_medical_certificate")
    fields = (res.key, "mother_id_number")

    def view(masks: dict[str, str]) -> View:
        return View("police", res.id, res.provider, fields, masks=masks, receiving=True)

    old, new = b"o" * 32, b"n" * 32
    hashed = compile_view(res, view({"mother_id_number": "hash"}), old)
    assert hashed.key_fingerprint is not None
    assert (
        hashed.key_fingerprint
        != compile_view(res, view({"mother_id_number": "hash"}), new).key_fingerprint
    )
    assert compile_view(res, view({}), old).key_fingerprint is None  # nothing hashed
    key_hashed = compile_view(res, view({res.key: "keep:2:2"}), old)  # the key is masked
    assert key_hashed.key_fingerprint == hashed.key_fingerprint

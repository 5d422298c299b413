"""The console signs each department's commands with the key it holds, and only with that key.

The catalog registers police's and health's public keys, so their commands must be
signed. A console that holds health's key approves for health's approver; one that
does not is refused by the permission manager, and the page says why. Plain HTTP
(httpx), no browser: what is tested is the server side.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from exchange.admin.users import Principals
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.console.accounts import AccountBook
from exchange.console.app import console_app
from exchange.console.service import ConsoleSettings
from exchange.control import catalog_store, state
from exchange.http import server

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    out = {}
    for dept in ("police", "health"):
        pem, _ = signing.generate()
        out[dept] = folder / f"{dept}.pem"
        out[dept].write_bytes(pem)
    return out


@pytest.fixture(scope="module")
async def keyed_catalog(bus: Connection, sample_catalog: Catalog, pems: dict[str, Path]) -> Catalog:
    depts = dict(sample_catalog.departments)
    for d, path in pems.items():
        key = signing.load_private_key(path)
        depts[d] = depts[d].model_copy(update={"public_key": signing.public_key_of(key)})
    catalog = sample_catalog.model_copy(update={"departments": depts})
    await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")
    return catalog


@asynccontextmanager
async def health_approver(
    bus: Connection, principals: Principals, catalog: Catalog, keys_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A console holding the keys in ``keys_dir``, and health's approver logged in to it."""
    accounts = keys_dir.parent / f"{keys_dir.name}-accounts.yaml"
    digest = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    accounts.write_text(
        f"accounts:\n  - user: wang\n    department: health\n    roles: [approver]\n"
        f'    password_hash: "{digest}"\n',
        encoding="utf-8",
    )
    settings = ConsoleSettings(accounts=accounts, keys_dir=keys_dir, secure_cookies=False)
    book = AccountBook.load(accounts, set(catalog.departments))
    async with (
        server.running(console_app(bus, principals.of, settings, book)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        login = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token
        answer = await client.post(
            "/login", data={"user": "wang", "password": PASSWORD, "csrf_token": token[1]}
        )
        assert answer.status_code == 303
        yield client


async def approve(client: httpx.AsyncClient, app_id: str) -> httpx.Response:
    form = await client.get(f"/applications/{app_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    return await client.post(
        f"/applications/{app_id}/approve",
        data={"csrf_token": token[1], "fields": "mother_name", "mask_mother_name": "surname"},
    )


async def test_the_console_signs_with_the_key_it_holds_and_refuses_without(
    bus: Connection,
    principals: Principals,
    keyed_catalog: Catalog,
    pems: dict[str, Path],
    tmp_path: Path,
) -> None:
    police_key = signing.load_private_key(pems["police"])
    async with Department(bus, "police", signing_key=police_key) as police:
        app_id = await police.apply(BMC, fields=["mother_name"], purpose="落户 registration")
    without = tmp_path / "police-only"
    without.mkdir()
    (without / "police.pem").write_bytes(pems["police"].read_bytes())
    async with health_approver(bus, principals, keyed_catalog, without) as client:
        refused = await approve(client, app_id)
    assert refused.status_code == 403
    assert "no signature" in refused.text  # the permission manager's reason, shown
    assert not (await state.load(bus)).book.applications[app_id].grant_id

    async with health_approver(bus, principals, keyed_catalog, pems["health"].parent) as client:
        approved = await approve(client, app_id)
        assert approved.status_code == 303
        inbox = await client.get(approved.headers["location"])
        # the desk's audit chain is counted; with no service identity, none of it is signed
        exported = (await client.get("/metrics")).text
    unsigned = re.search(
        r'^gov_exchange_audit_unsigned_entries\{role="health"\} (\S+)$', exported, re.M
    )
    assert unsigned, exported
    assert float(unsigned[1]) >= 1
    grant = re.search(r"GR-[\w-]+", inbox.text)
    assert grant, inbox.text
    book = (await state.load(bus)).book
    assert book.grants[grant[0]].masks == {"mother_name": "surname"}
    assert "BEGIN PRIVATE KEY" not in inbox.text

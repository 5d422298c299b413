"""The demo: 出生一件事, "one thing" for a newborn, end to end on the embedded broker.

A baby is born. Health (卫健) publishes the birth medical certificate once;
every department that needs it gets its own view instead of the parents
carrying paper from office to office (最多跑一次, "run at most once"):

* human resources and social security (人社) subscribes and receives the
  unconditional fields (无条件共享) only;
* police (公安) applies for the parents' identity (有条件共享) to register the
  newborn's household; health approves part of it, masks the mother's ID
  number and limits the rows to its province;
* civil affairs (民政) asks for the birth weight, a not-shared field
  (不予共享): refused, with the legal basis;
* health revokes police's grant mid-stream: later certificates no longer reach police.

Every department signs what it does (签名) with an Ed25519 key made for this run
in a temporary directory (deleted at the end; no private key is ever kept), and
health is the catalog administrator (目录管理员) that signs the catalog load. An
approval "from" health signed with police's key, and a catalog load by police,
are refused: the name given with ``--as`` is not enough.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.admin import acls, users
from exchange.admin.users import Principals
from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.avro.jsoncodec import to_jsonable
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import record_id
from exchange.catalog import signing
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader, Received, Retraction
from exchange.control import catalog_store
from exchange.dev import engines, sample
from exchange.dev.broker import given_or_embedded
from exchange.errors import CommandRefused, ExchangeError
from exchange.router.loop import Router
from exchange.sharing.policy import View
from exchange.tables import clip, table

if TYPE_CHECKING:
    from exchange.dev.kafka import KafkaCluster

RESOURCE = "birth_medical_certificate"
#: the catalog administrator (目录管理员) of the demo: the sample catalog has no data
#: bureau, so the provider of the scenario keeps the catalog
ADMIN = "health"


def record_id_of(catalog: Catalog, record: dict[str, Any]) -> str:
    """The record id the publisher gives ``record`` (to find its copies downstream)."""
    res = catalog.resource(RESOURCE)
    return record_id(RESOURCE, wire.encode(avro.parse(res.schema_), record))


def make_keys(catalog: Catalog, directory: Path) -> dict[str, Ed25519PrivateKey]:
    """One Ed25519 key per department, written to ``directory`` as ``<dept>.pem``."""
    keys = {}
    for dept in catalog.departments:
        pem, _public = signing.generate()
        path = directory / f"{dept}.pem"
        path.write_bytes(pem)
        path.chmod(0o600)
        keys[dept] = signing.load_private_key(path)
    return keys


def with_keys(catalog: Catalog, keys: dict[str, Ed25519PrivateKey], admin: str) -> Catalog:
    """``catalog`` with every department's public key registered, ``admin`` as the
    catalog administrator and signatures required (no department trusted by name)."""
    return catalog.with_keys(
        {d: signing.public_key_of(k) for d, k in keys.items()},
        admins={admin},
        signatures_required=True,
    )


def _say(echo: Callable[[str], None], title: str) -> None:
    echo("")
    echo(f"== {title}")


async def _read_until(bus: Connection, topic: str, want: int, wait_s: float = 20.0) -> list[Any]:
    """The records on ``topic`` so far, waiting up to ``wait_s`` for ``want`` records (a
    grant's retraction or a deletion is an event, not a record: not counted)."""
    deadline = time.monotonic() + wait_s
    async with Reader(bus, topic) as r:
        out: list[Any] = []
        async for batch in r.batches(idle_timeout=wait_s):
            out.extend(e for e in batch if isinstance(e, Received))
            if len(out) >= want or time.monotonic() > deadline:
                break
    return out


async def _retractions(bus: Connection, topic: str) -> list[Retraction]:
    """The grant retractions on ``topic`` (one per delivery partition the grant fed)."""
    async with Reader(bus, topic) as r:
        found: list[Retraction] = []
        async for batch in r.batches(idle_timeout=1.0):
            found.extend(e for e in batch if isinstance(e, Retraction))
    return found


async def _on_kafka(
    cluster: KafkaCluster, catalog_dir: Path, echo: Callable[[str], None]
) -> Principals:
    """Every principal's SCRAM user and ACLs on ``cluster``; their connections."""
    admin = engines.super_user(cluster)
    done = await asyncio.to_thread(
        users.provision, admin, load_catalog(catalog_dir), engines.credentials_dir(cluster)
    )
    echo(
        f"Apache Kafka at {cluster.bootstrap} ({cluster.nodes} node(s), data in {cluster.dir}): "
        f"{len(done.users)} users and {done.acl_bindings} ACL bindings; every step below runs "
        f"as its own user (passwords in {done.credentials})"
    )
    return Principals(admin, done.credentials)


async def run_demo(
    catalog_dir: Path, echo: Callable[[str], None] = print, *, kafka: KafkaCluster | None = None
) -> dict[str, Any]:
    """Run the scenario; returns what each department received (for tests).

    ``kafka``: a running Apache Kafka cluster (users and ACLs are provisioned on it);
    else ``EXCHANGE_BOOTSTRAP_SERVERS``, else an embedded broker started for the run.
    """
    broker = None
    if kafka is not None:
        principals = await _on_kafka(kafka, catalog_dir, echo)
    else:
        bus, broker = given_or_embedded(os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS"))
        principals = Principals(bus)
        if broker is None:
            echo(f"using Kafka at {bus}")
        else:
            echo(f"embedded broker started on {bus.bootstrap} (memory only; stopped at the end)")
    router: Router | None = None
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    key_dir = tempfile.TemporaryDirectory(prefix="exchange-demo-keys-")
    try:
        catalog, keys = await _load_signed_catalog(
            principals, catalog_dir, Path(key_dir.name), echo
        )
        router = Router(
            principals.of(acls.ROUTER),
            group=acls.ROUTER_GROUP,
            master_secret=secrets.token_bytes(32),  # made per run: a secret in code is none
        )
        await router.start()
        task = asyncio.create_task(router.run(stop))
        echo("router started")
        return await _Scenario(principals, catalog, keys, echo).run()
    finally:
        stop.set()
        if task is not None:
            await task
        if router is not None:
            await router.stop()
        key_dir.cleanup()
        if broker is not None:
            broker.stop()
            echo("embedded broker stopped")


async def _load_signed_catalog(
    principals: Principals, catalog_dir: Path, key_dir: Path, echo: Callable[[str], None]
) -> tuple[Catalog, dict[str, Ed25519PrivateKey]]:
    """The catalog with a key made for each department, loaded onto the bus by ``ADMIN``."""
    catalog = load_catalog(catalog_dir)
    keys = make_keys(catalog, key_dir)
    catalog = with_keys(catalog, keys, ADMIN)
    echo(
        f"keys: one Ed25519 key per department, made for this run in {key_dir} "
        "(deleted at the end); public keys registered in the catalog"
    )
    try:
        change = await catalog_store.load(
            principals.of(acls.ADMIN), catalog, actor=ADMIN, signing_key=keys[ADMIN]
        )
    except CommandRefused as exc:
        raise ExchangeError(
            f"{exc}: this bus already has a catalog whose administrators' keys this demo "
            "run does not hold (the demo makes new keys each run); run it on a fresh broker"
        ) from None
    echo(
        f"catalog version {change.version} loaded: {len(catalog.resources)} resources; "
        f"signed by {ADMIN}, its catalog administrator (目录管理员)"
    )
    return catalog, keys


@dataclass
class _Scenario:
    """The demo's steps, on a bus whose catalog is loaded and whose router runs."""

    principals: Principals
    catalog: Catalog
    keys: dict[str, Ed25519PrivateKey]
    echo: Callable[[str], None]
    summary: dict[str, Any] = field(default_factory=lambda: {"denied": {}, "forged": {}})

    async def _read_until(self, dept: str, want: int, wait_s: float = 20.0) -> list[Any]:
        """What ``dept`` received of the resource, read with its own connection."""
        topic = topics.delivery(dept, RESOURCE)
        return await _read_until(self.principals.of(dept), topic, want, wait_s)

    def _department(self, name: str, key_of: str | None = None) -> Department:
        """``name`` signing with the key of ``key_of`` (its own by default)."""
        return Department(self.principals.of(name), name, signing_key=self.keys[key_of or name])

    async def run(self) -> dict[str, Any]:
        await self.subscribe()
        grant_id = await self.apply_and_approve()
        await self.ask_not_shared()
        records = sample.generate(self.catalog.resource(RESOURCE).schema_, 300, seed=2017)
        police_got, expected_police = await self.publish(records[:200])
        hrss_all, police_all = await self.revoke_and_publish(grant_id, records[200:])
        await self.show_certificate(records[:200], hrss_all, police_all)
        self.conclude(len(records), len(hrss_all), len(police_all))
        self.summary.update(
            hrss=len(hrss_all),
            police=len(police_all),
            police_before_revoke=len(police_got),
            expected_police=expected_police,
            grant_id=grant_id,
        )
        return self.summary

    async def subscribe(self) -> None:
        _say(
            self.echo,
            "1. 人社 hrss subscribes: unconditional fields (无条件共享) need no application",
        )
        async with self._department("hrss") as hrss:
            view = await hrss.subscribe(RESOURCE)
        self.echo(f"   hrss receives: {', '.join(view.delivered)}")

    async def apply_and_approve(self) -> str:
        """Police applies, two forgeries are refused, health approves part of it: the grant id."""
        echo = self.echo
        _say(echo, "2. 公安 police applies for the parents' identity (有条件共享)")
        async with self._department("police") as police:
            app_id = await police.apply(
                RESOURCE,
                fields=[
                    "mother_name",
                    "mother_id_number",
                    "father_name",
                    "father_id_number",
                    "address",
                ],
                purpose="新生儿出生登记（落户） household registration of the newborn",
                legal_basis="《中华人民共和国户口登记条例》第七条",
            )
        echo(f"   application {app_id}")
        await self.forge(app_id)
        async with self._department("health") as health:
            grant_id = await health.approve(
                app_id,
                fields=["mother_name", "mother_id_number", "address"],
                masks={"mother_id_number": "keep:6:4"},
                row_filter='region_code.startsWith("33")',
            )
        echo(
            f"   health approves {grant_id}: mother_name, mother_id_number (masked keep:6:4), "
            "address; rows of Zhejiang (region_code 33xxxx) only; the father's fields are not granted"
        )
        return grant_id

    async def forge(self, app_id: str) -> None:
        """Impersonation (冒用身份): police approves "as" health, and loads a catalog of its own."""
        echo = self.echo
        try:
            async with self._department("health", key_of="police") as impostor:
                await impostor.approve(app_id)
            raise ExchangeError("the forged approval was accepted: signed commands are broken")
        except CommandRefused as exc:
            self.summary["forged"]["approval"] = str(exc)
            echo("   forged (冒用身份): police approves it 'as' health, signed with police's key")
            echo(f"     REFUSED: {exc}")
        try:
            await catalog_store.load(
                self.principals.of("police"),
                self.catalog,
                actor="police",
                signing_key=self.keys["police"],
            )
            raise ExchangeError("police's catalog load was accepted: signed loads are broken")
        except CommandRefused as exc:
            self.summary["forged"]["catalog load"] = str(exc)
            echo("   forged: police loads a catalog of its own")
            echo(f"     REFUSED: {exc}")

    async def ask_not_shared(self) -> None:
        _say(
            self.echo, "3. 民政 civil affairs asks for birth weight, a not-shared field (不予共享)"
        )
        async with self._department("civil_affairs") as ca:
            try:
                await ca.apply(RESOURCE, fields=["birth_weight_grams"], purpose="统计 statistics")
            except CommandRefused as exc:
                self.summary["denied"]["civil_affairs"] = str(exc)
                self.echo(f"   REFUSED: {exc}")
            denied_view = ca.explain(RESOURCE)
        self.echo(
            f"   civil affairs' own view: {denied_view.denied or ', '.join(denied_view.fields)}"
        )

    async def publish(self, records: list[dict[str, Any]]) -> tuple[list[Any], int]:
        """Health publishes ``records``: what police received, and how many it should have."""
        _say(self.echo, "4. 卫健 health publishes 200 birth medical certificates")
        async with Publisher(self.principals.of("health"), self.catalog, "health") as pub:
            await pub.publish(RESOURCE, records)
        hrss_got = await self._read_until("hrss", len(records))
        expected_police = sum(1 for r in records if r["region_code"].startswith("33"))
        police_got = await self._read_until("police", expected_police)
        self.echo(
            f"   hrss received {len(hrss_got)}, police received {len(police_got)} (Zhejiang rows)"
        )
        return police_got, expected_police

    async def revoke_and_publish(
        self, grant_id: str, records: list[dict[str, Any]]
    ) -> tuple[list[Any], list[Any]]:
        """Health revokes police's grant and publishes ``records``: all hrss and police have."""
        _say(self.echo, "5. health revokes police's grant, then publishes 100 more")
        async with self._department("health") as health:
            await health.revoke(grant_id, reason="落户办结 registration completed")
        async with Publisher(self.principals.of("health"), self.catalog, "health") as pub:
            await pub.publish(RESOURCE, records)
        hrss_all = await self._read_until("hrss", 300)
        police_all = await self._read_until("police", 10**9, wait_s=3)
        self.echo(
            f"   hrss now has {len(hrss_all)}; police still has {len(police_all)}: nothing after the revocation"
        )
        retracted = await _retractions(
            self.principals.of("police"), topics.delivery("police", RESOURCE)
        )
        if retracted:
            self.echo(
                f"   police's topic also carries the grant's retraction ({retracted[0].reason}): "
                f"the rows it holds are to be handled as the approval said: {retracted[0].at_rest}"
            )
        return hrss_all, police_all

    async def show_certificate(
        self, published: list[dict[str, Any]], hrss_all: list[Any], police_all: list[Any]
    ) -> None:
        """One Zhejiang certificate as health published it and as each department received it."""
        _say(self.echo, "Summary: one certificate, as each department received it")
        cert = next(r for r in published if r["region_code"].startswith("33"))
        # each department's copy is found by record id, the join that always works (a
        # delivery key is a keyed hash whenever a view does not carry the key field in clear)
        cert_id = record_id_of(self.catalog, cert)
        received = {
            "health (provider)": cert,
            "hrss (subscribed)": next((r.value for r in hrss_all if r.record_id == cert_id), None),
            "police (grant, revoked)": next(
                (r.value for r in police_all if r.record_id == cert_id), None
            ),
        }
        async with self._department("police") as police:
            police_view = police.explain(RESOURCE)
        async with self._department("hrss") as hrss:
            hrss_view = hrss.explain(RESOURCE)
        explains = {"hrss (subscribed)": hrss_view, "police (grant, revoked)": police_view}
        rows = []
        for name in cert:
            cells = [name]
            for who, got in received.items():
                cells.append(_cell(name, got, explains.get(who)))
            rows.append(cells)
        self.echo(table(rows, ["field", *received]))

    def conclude(self, published: int, hrss: int, police: int) -> None:
        echo = self.echo
        echo("")
        echo(f"police received {police} of {published} certificates: only Zhejiang rows")
        echo('(row filter region_code.startsWith("33")), and none published after the revocation;')
        echo(
            f"its mother_id_number is masked keep:6:4. hrss received {hrss}, "
            "unconditional fields only."
        )
        echo("denied: civil_affairs asking for birth_weight_grams (不予共享 not shared).")
        echo(
            "refused: an approval 'from' health signed with police's key, and a catalog load "
            "by police (only health's signature counts)."
        )


def _cell(name: str, got: dict[str, Any] | None, dept_view: View | None) -> str:
    """Field ``name`` of a department's copy ``got``, or why the department does not have it."""
    if got is not None and name in got:
        return clip(str(to_jsonable(got[name])), 26)
    if dept_view is not None and name in dept_view.excluded:
        return "(not shared)" if "不予共享" in dept_view.excluded[name] else "(not granted)"
    if got is None:
        return "(not received)"
    return "(not granted)"

"""The Schema Registry–compatible API, served for real (uvicorn on a loopback port) and used by
clients nobody here wrote: confluent-kafka's SchemaRegistryClient, AvroDeserializer and
AvroSerializer, talking to the embedded broker (librdkafka) like any department system would.

A router runs for the module; police holds a masked grant on birth certificates, hrss
subscribes to them. Credentials are HTTP basic, checked against password files made here
(the same files ``exchange acls --apply`` writes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jvm_support
import pytest
from cli_support import EXCHANGE, cli_env
from routing_support import RouterRun, publish, read_topic, running_router, wait_routed, wait_views

from exchange.admin import users
from exchange.audit.entry import Action
from exchange.audit.log import entries_only, read_log
from exchange.avro import schema as avro
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control import catalog_store
from exchange.dev import sample
from exchange.http import server
from exchange.http.auth import BrokerLogin, Gate, PasswordFiles
from exchange.http.errors import HttpError
from exchange.http.throttle import LoginThrottle
from exchange.registry.app import registry_app

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
LICENCE = "business_licence"
UNCONDITIONAL = [
    "certificate_no",
    "child_name",
    "gender",
    "birth_date",
    "hospital_name",
    "region_code",
    "issued_at",
]
POLICE_GRANT = ["mother_name", "mother_id_number"]
PASSWORDS = {"police": "pw-police", "hrss": "pw-hrss", "health": "pw-health", "auditor": "pw-aud"}
MEDIA = "application/vnd.schemaregistry.v1+json"


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


@pytest.fixture(scope="module")
async def grants(bus: Connection, loaded_catalog: Catalog, router: RouterRun) -> None:
    async with (
        Department(bus, "police") as police,
        Department(bus, "hrss") as hrss,
        Department(bus, "health") as health,
    ):
        await hrss.subscribe(BMC)
        app = await police.apply(BMC, fields=POLICE_GRANT, purpose="新生儿落户 registration")
        await health.approve(app, masks={"mother_id_number": "keep:6:4"})
    await wait_views(router, BMC, {"hrss": UNCONDITIONAL, "police": UNCONDITIONAL + POLICE_GRANT})


@pytest.fixture(scope="module")
async def registry(
    bus: Connection, grants: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    credentials = tmp_path_factory.mktemp("credentials")
    for user, password in PASSWORDS.items():
        (credentials / f"{user}.password").write_text(password + "\n")
    app = registry_app(bus, Gate(PasswordFiles(credentials)))
    async with server.running(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(200):  # the app answers once its follower caught up
                if (await client.get("/health")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
        yield url


def client(url: str, user: str | None) -> httpx.AsyncClient:
    auth = (user, PASSWORDS[user]) if user else None
    return httpx.AsyncClient(base_url=url, auth=auth, headers={"Accept": MEDIA})


def sr_conf(url: str, user: str) -> dict[str, Any]:
    return {"url": url, "basic.auth.user.info": f"{user}:{PASSWORDS[user]}"}


def kafka_conf(bus: Connection) -> dict[str, Any]:
    """librdkafka's settings for ``bus``: its address, and its SASL user on the Kafka lane."""
    conf: dict[str, Any] = {"bootstrap.servers": bus.bootstrap}
    if bus.sasl:
        assert bus.password is not None
        conf |= {
            "security.protocol": bus.security_protocol,
            "sasl.mechanism": bus.sasl_mechanism,
            "sasl.username": bus.username,
            "sasl.password": bus.password.reveal(),
        }
    return conf


def confluent_read(
    bus: Connection, url: str, user: str, topic: str, count: int, within: float = 30.0
) -> list[tuple[str | None, dict[str, Any]]]:
    """(record id header, value) of ``count`` records of ``topic``, decoded by confluent-kafka."""
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient(sr_conf(url, user))
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            **kafka_conf(bus),
            "group.id": f"{user}-confluent-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[str | None, dict[str, Any]]] = []
    deadline = time.monotonic() + within
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
            headers = dict(msg.headers() or [])
            rid = headers.get("gov-record-id")
            out.append((rid.decode() if rid else None, value))
    finally:
        consumer.close()
        registry.close()
    return out


async def test_confluent_consumer_decodes_police_view_as_exchange_does(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun, registry: str
) -> None:
    records = sample.generate(loaded_catalog.resources[BMC].schema_, 20, seed=3)
    before = router.router.routed
    await publish(bus, loaded_catalog, BMC, records)
    await wait_routed(router, before + len(records))
    topic = topics.delivery("police", BMC)
    ours = await read_topic(bus, topic, until=lambda got: len(got) >= len(records))
    theirs = await asyncio.to_thread(confluent_read, bus, registry, "police", topic, len(ours))
    assert len(theirs) == len(ours) == len(records)
    by_id = {r.record_id: r.value for r in ours}
    for rid, value in theirs:
        assert value == by_id[rid]  # field for field
        assert set(value) == set(UNCONDITIONAL + POLICE_GRANT)
        assert value["mother_id_number"][6:-4].strip("*") == ""  # masked as approved


async def test_confluent_producer_publishes_with_the_latest_source_schema(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun, registry: str
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    res = loaded_catalog.resources[BMC]
    source = topics.source("health", BMC)
    records = sample.generate(res.schema_, 15, seed=99)
    for i, rec in enumerate(records):
        rec["certificate_no"] = f"CONFLUENT-{i:03d}"
    sr = SchemaRegistryClient(sr_conf(registry, "health"))
    serializer = AvroSerializer(
        sr,
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    producer = Producer({**kafka_conf(bus), "enable.idempotence": False, "acks": "all"})
    before = router.router.routed

    def produce() -> None:
        for rec in records:
            value = serializer(rec, SerializationContext(source, MessageField.VALUE))
            assert value is not None
            assert value[0] == 0
            assert int.from_bytes(value[1:5], "big") == res.schema_id  # the id on the wire
            producer.produce(source, key=rec[res.key].encode(), value=value)
        assert producer.flush(15) == 0

    try:
        await asyncio.to_thread(produce)
    finally:
        sr.close()
    await wait_routed(router, before + len(records))
    got = await read_topic(
        bus,
        topics.delivery("hrss", BMC),
        until=lambda rs: (
            sum(r.value["certificate_no"].startswith("CONFLUENT-") for r in rs) >= len(records)
        ),
    )
    routed = {r.value["certificate_no"]: r.value for r in got}
    for rec in records:
        assert routed[rec["certificate_no"]] == {f: rec[f] for f in UNCONDITIONAL}


@pytest.fixture(scope="session")
def jvm_client() -> Path:
    """tests/jvm/registry-client, built with Maven once (re-used while its files are unchanged).

    ``make test`` installs Maven (tests/services/require-packages.sh): without it the README's
    promise that a Java client reads the view is untested, a failure, not a skip."""
    try:
        return jvm_support.build()
    except jvm_support.MavenMissing as exc:
        pytest.fail(f"cannot build the JVM client (make test installs Maven): {exc}")


def jvm_read(
    built: Path, conn: Connection, url: str, user: str, password: str, topic: str
) -> subprocess.CompletedProcess[str]:
    """Run the JVM client over ``topic`` as ``conn``'s Kafka user, asking the registry as ``user``."""
    args = ["--bootstrap", conn.bootstrap, "--topic", topic, "--registry", url]
    args += ["--registry-user", user, "--timeout", "60"]
    env = {"PATH": os.environ.get("PATH", ""), "REGISTRY_PASSWORD": password}
    if conn.sasl:
        assert conn.username is not None
        assert conn.password is not None
        args += ["--security-protocol", conn.security_protocol, "--sasl-user", conn.username]
        args += ["--sasl-mechanism", conn.sasl_mechanism]
        env["KAFKA_SASL_PASSWORD"] = conn.password.reveal()
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    command = jvm_support.command(built, *args)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def test_a_jvm_client_decodes_police_view_as_exchange_consume_prints(
    bus: Connection,
    principals: users.Principals,
    loaded_catalog: Catalog,
    router: RouterRun,
    registry: str,
    jvm_client: Path,
    tmp_path: Path,
) -> None:
    """Spring Cloud Stream's ConfluentSchemaRegistryClient and Avro's Java decoder, from Java."""
    records = sample.generate(loaded_catalog.resources[BMC].schema_, 10, seed=17)
    before = router.router.routed
    await publish(bus, loaded_catalog, BMC, records)
    await wait_routed(router, before + len(records))
    police = principals.of("police")
    topic = topics.delivery("police", BMC)
    env = cli_env(police, EXCHANGE_STATE_DIR=str(tmp_path / "state"))
    consume = [EXCHANGE, "consume", "--as", "police", BMC, "--json", "--timeout", "2"]

    def run_consume() -> subprocess.CompletedProcess[str]:
        return subprocess.run(consume, env=env, capture_output=True, text=True, timeout=120)

    ours, java, refused = await asyncio.gather(
        asyncio.to_thread(run_consume),
        asyncio.to_thread(
            jvm_read, jvm_client, police, registry, "police", PASSWORDS["police"], topic
        ),
        # hrss's registry credentials do not disclose police's view schema: the client fails
        asyncio.to_thread(jvm_read, jvm_client, police, registry, "hrss", PASSWORDS["hrss"], topic),
    )
    assert ours.returncode == 0, ours.stderr
    assert java.returncode == 0, java.stderr
    printed = [json.loads(line) for line in ours.stdout.splitlines()]
    decoded = [json.loads(line) for line in java.stdout.splitlines()]
    assert len(decoded) == len(printed) >= len(records)

    def by_no(value: dict[str, Any]) -> str:
        return str(value["certificate_no"])

    values = [d["value"] for d in decoded]
    assert sorted(values, key=by_no) == sorted(printed, key=by_no)  # field for field
    assert {r["certificate_no"] for r in records} <= {by_no(v) for v in values}
    async with client(registry, "police") as c:
        latest = (await c.get(f"/subjects/{topic}-value/versions/latest")).json()
    assert {d["schema_id"] for d in decoded} == {latest["id"]}
    assert all(set(v) == set(UNCONDITIONAL + POLICE_GRANT) for v in values)
    assert refused.returncode != 0
    assert f"Could not find schema with id: {latest['id']}" in refused.stderr


async def test_a_department_sees_its_own_views_not_another_departments(registry: str) -> None:
    police_view = "gov.dlv.police.birth_medical_certificate-value"
    hrss_view = "gov.dlv.hrss.birth_medical_certificate-value"
    async with client(registry, "auditor") as auditor:
        hrss_latest = (await auditor.get(f"/subjects/{hrss_view}/versions/latest")).json()
        everything = (await auditor.get("/subjects")).json()
    assert {police_view, hrss_view} <= set(everything)
    async with client(registry, "police") as police:
        listed = (await police.get("/subjects")).json()
        assert police_view in listed
        assert hrss_view not in listed
        assert "gov.src.health.birth_medical_certificate-value" in listed  # may discover
        assert "gov.src.health.death_registration-value" not in listed  # not shared
        r = await police.get(f"/subjects/{hrss_view}/versions/latest")
        assert r.status_code == 404
        assert r.json() == {"error_code": 40401, "message": f"Subject '{hrss_view}' not found."}
        assert r.headers["content-type"] == MEDIA
        # hrss's view schema (unconditional fields only) is not police's to see
        r = await police.get(f"/schemas/ids/{hrss_latest['id']}")
        assert (r.status_code, r.json()["error_code"]) == (404, 40403)
        mine = (await police.get(f"/subjects/{police_view}/versions/latest")).json()
        schema = json.loads(mine["schema"])
        assert [f["name"] for f in schema["fields"]] == UNCONDITIONAL[:2] + [
            f["name"] for f in schema["fields"][2:]
        ]
        assert avro.schema_id(schema) == mine["id"]
        assert (await police.get(f"/schemas/ids/{mine['id']}")).json() == {"schema": mine["schema"]}
        subjects = (await police.get(f"/schemas/ids/{mine['id']}/subjects")).json()
        assert subjects == [police_view]


async def test_credentials_are_required_and_checked(registry: str) -> None:
    async with httpx.AsyncClient(base_url=registry) as anon:
        r = await anon.get("/subjects")
        assert r.status_code == 401
        assert r.json()["error_code"] == 401
        assert r.headers["www-authenticate"].startswith("Basic")
        bad = base64.b64encode(b"police:wrong").decode()
        r = await anon.get("/subjects", headers={"Authorization": f"Basic {bad}"})
        assert (r.status_code, r.json()["error_code"]) == (401, 401)
        nobody = base64.b64encode(b"../etc/passwd:x").decode()
        r = await anon.get("/subjects", headers={"Authorization": f"Basic {nobody}"})
        assert r.status_code == 401
        assert (await anon.get("/health")).json()["status"] == "ok"  # open to load balancers


async def test_refusals_are_audited_and_repeated_failed_logins_throttled(
    bus: Connection, grants: None, registry: str, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for user, password in PASSWORDS.items():
        (credentials / f"{user}.password").write_text(password + "\n")
    throttle = LoginThrottle(max_failures=3, window_s=60, block_s=30)
    app = registry_app(bus, Gate(PasswordFiles(credentials), throttle=throttle))
    view = f"gov.dlv.police.{BMC}-value"
    async with client(registry, "police") as police:
        view_id = (await police.get(f"/subjects/{view}/versions/latest")).json()["id"]
    async with server.running(app) as url:
        async with client(url, "hrss") as hrss:
            for _ in range(200):
                if (await hrss.get("/health")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            r = await hrss.get(f"/subjects/{view}/versions")
            assert (r.status_code, r.json()["error_code"]) == (404, 40401)
            r = await hrss.get(f"/schemas/ids/{view_id}")
            assert (r.status_code, r.json()["error_code"]) == (404, 40403)
            r = await hrss.get("/subjects/no.such.subject-value/versions")  # unknown: not audited
            assert r.json()["error_code"] == 40401
        async with httpx.AsyncClient(base_url=url, auth=("police", "wrong")) as guesser:
            assert [(await guesser.get("/subjects")).status_code for _ in range(3)] == [401] * 3
        async with client(url, "police") as police:
            r = await police.get("/subjects")  # the right password, but too late
            assert (r.status_code, r.json()["error_code"]) == (429, 42901)
            assert 29 <= int(r.headers["retry-after"]) <= 30
        audit = app.state.access_audit
        await audit.flush()
        writer = audit.writer_id
    entries = [e for _, e in entries_only(await read_log(bus)) if e.writer == writer]
    assert {e.action for e in entries} == {Action.ACCESS_DENIED}
    assert {e.decision for e in entries} == {"denied"}
    got = [(e.actor, e.details["status"], e.details["error_code"]) for e in entries]
    assert got == [
        ("hrss", "404", "40401"),
        ("hrss", "404", "40403"),
        ("police", "401", "401"),
        ("police", "401", "401"),
        ("police", "401", "401"),
        ("police", "429", "42901"),
    ]
    subject, schema = entries[0], entries[1]
    assert subject.details["request"] == f"GET /subjects/{view}/versions"
    assert (subject.resource, subject.consumer) == (BMC, "police")
    assert subject.reason == f"subject {view} is the view of police: not disclosed to hrss"
    assert schema.details["request"] == f"GET /schemas/ids/{view_id}"
    assert schema.reason is not None
    assert view in schema.reason
    assert entries[2].reason == "wrong user name or password"
    assert entries[2].details["client"] == "127.0.0.1"
    assert entries[5].reason is not None
    assert entries[5].reason.startswith("3 failed logins from 127.0.0.1 within 60 s")


@pytest.mark.kafka_only("the embedded broker has no users to log in as")
async def test_broker_login_reads_the_brokers_error_code(principals: users.Principals) -> None:
    police = principals.of("police")
    assert police.password is not None
    login = BrokerLogin(police)
    assert await login.check("police", police.password.reveal()) is True
    assert await login.check("police", "wrong") is False
    assert await login.check("nobody-at-all", "x") is False


async def test_broker_login_answers_503_when_no_broker_answers() -> None:
    from exchange.bus.connection import Secret

    nowhere = f"127.0.0.1:{server.free_port()}"
    conn = Connection(nowhere, "SASL_PLAINTEXT", username="police", password=Secret("pw"))
    with pytest.raises(HttpError) as refused:
        await BrokerLogin(conn, timeout_s=2).check("police", "pw")
    assert (refused.value.status, refused.value.code) == (503, 50302)


async def test_read_only_lookup_config_and_service_endpoints(
    loaded_catalog: Catalog, registry: str
) -> None:
    subject = "gov.src.health.birth_medical_certificate-value"
    res = loaded_catalog.resources[BMC]
    async with client(registry, "health") as health:
        body = {"schema": json.dumps(res.schema_, indent=2)}  # other whitespace, same schema
        r = await health.post(f"/subjects/{subject}", json=body)
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["version"]) == (res.schema_id, 1)
        r = await health.post(f"/subjects/{subject}/versions", json=body)
        assert (r.status_code, r.json()["error_code"]) == (422, 42205)
        assert "auto.register.schemas=False" in r.json()["message"]
        r = await health.post(f"/subjects/{subject}", json={"schema": "{not json"})
        assert (r.status_code, r.json()["error_code"]) == (422, 42201)
        r = await health.get(f"/subjects/{subject}/versions/7")
        assert (r.status_code, r.json()["error_code"]) == (404, 40402)
        r = await health.get(f"/subjects/{subject}/versions/zero")
        assert (r.status_code, r.json()["error_code"]) == (422, 42202)
        assert (await health.get("/mode")).json() == {"mode": "READONLY"}
        assert (await health.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}
        assert (await health.get("/schemas/types")).json() == ["AVRO"]
        r = await health.get("/no/such/route")
        assert (r.status_code, r.json()["error_code"]) == (404, 404)
        openapi = (await health.get("/openapi.json")).json()
        assert "/schemas/ids/{id}" in openapi["paths"]
        metrics = (await health.get("/metrics")).text
        assert 'gov_exchange_http_requests_total{method="GET",route="/schemas/ids/{id}"' in metrics
        assert "gov_exchange_registry_catalog_version 1.0" in metrics


async def test_a_new_catalog_version_is_served_within_a_second(
    bus: Connection, registry: str, tmp_path: Path
) -> None:
    from exchange.catalog.model import Catalog as _Catalog

    directory = Path(shutil.copytree(Path("schemas"), tmp_path / "schemas"))
    path = directory / "avro" / f"{LICENCE}.avsc"
    schema = json.loads(path.read_text())
    added = {"name": "remark", "type": ["null", "string"], "default": None, "doc": "备注 remark"}
    schema["fields"].append(added)
    path.write_text(json.dumps(schema, ensure_ascii=False))
    new: _Catalog = load_catalog(directory)
    subject = "gov.src.market.business_licence-value"
    async with client(registry, "police") as police:
        assert (await police.get(f"/subjects/{subject}/versions")).json() == [1]
        await catalog_store.load(bus, new, actor="tests", unsigned_override="test suite")
        loaded = time.monotonic()
        while (await police.get(f"/subjects/{subject}/versions")).json() != [1, 2]:
            assert time.monotonic() - loaded < 1.0, "catalog version 2 not served within 1 s"
            await asyncio.sleep(0.02)
        latest = (await police.get(f"/subjects/{subject}/versions/latest")).json()
        assert latest["id"] == new.resources[LICENCE].schema_id
        # the catalog's own BACKWARD check answers compatibility
        schema["fields"].append({"name": "required_extra", "type": "string", "doc": "x"})
        r = await police.post(
            f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
            json={"schema": json.dumps(schema)},
        )
        assert r.json()["is_compatible"] is False
        assert "required_extra" in r.json()["messages"][0]
        schema["fields"].pop()
        r = await police.post(
            f"/compatibility/subjects/{subject}/versions/1", json={"schema": json.dumps(schema)}
        )
        assert r.json() == {"is_compatible": True}

"""The query gateway (接口调用, 核验) on a real broker, served by uvicorn, asked over TCP.

police provides population_basic. hrss holds a data grant (name masked to the surname,
rows of Hangzhou only); civil_affairs a verification-only grant on id_number and name;
market a data grant with a daily quota of 3, revoked at the end; health holds nothing.
A canary string sits in fields nobody but police may see, and in a record outside
hrss's filter: it must never appear in any answer, header or error.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import MASTER_SECRET, basic, poll, running_gateway, write_passwords
from routing_support import publish

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.journal import WINDOW_S
from exchange.audit.log import entries_only, read_log
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.dev import sample
from exchange.gateway.request_audit import audit_key, key_hash

pytestmark = pytest.mark.integration

POP = "population_basic"
CANARY = "CANARY-7f3a-never-leaves"
PURPOSE = {"purpose": "社保待遇核定 benefits check"}
HRSS_VIEW = {"name", "birth_date", "address", "region_code", "updated_at"}


class Seen:
    """Every answer the tests received: the canary must be in none of them."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, r: httpx.Response) -> httpx.Response:
        self.texts.append(r.text)
        self.texts.append(json.dumps(dict(r.headers)))
        return r


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="module")
def people(loaded_catalog: Catalog) -> list[dict[str, Any]]:
    rows = sample.generate(loaded_catalog.resources[POP].schema_, 4, seed=17)
    rows[0].update(region_code="330106", former_name=CANARY, household_no=CANARY)
    rows[1].update(region_code="110101", name=CANARY, address=CANARY)  # outside hrss's filter
    rows[2].update(region_code="330102")
    rows[3].update(region_code="330105")
    return rows


@pytest.fixture(scope="module")
async def grants(bus: Connection, loaded_catalog: Catalog) -> dict[str, str]:
    async with (
        Department(bus, "police") as police,
        Department(bus, "hrss") as hrss,
        Department(bus, "civil_affairs") as civil,
        Department(bus, "market") as market,
    ):
        a = await hrss.apply(POP, fields=["name", "birth_date", "address"], purpose="社保 benefits")
        hrss_grant = await police.approve(
            a, masks={"name": "surname"}, row_filter='region_code.startsWith("3301")'
        )
        v = await civil.apply(POP, fields=["id_number", "name"], purpose="低保 核验", verify=True)
        civil_grant = await police.approve(v)
        m = await market.apply(POP, fields=["name"], purpose="法人核查 checks")
        market_grant = await police.approve(m, quota_per_day=3)
    return {"hrss": hrss_grant, "civil_affairs": civil_grant, "market": market_grant}


@pytest.fixture(scope="module")
async def gateway(
    bus: Connection,
    loaded_catalog: Catalog,
    grants: dict[str, str],
    people: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[str]:
    credentials = write_passwords(tmp_path_factory.mktemp("credentials"))
    store = tmp_path_factory.mktemp("store") / "gateway.sqlite"
    async with running_gateway(bus, credentials, store) as (url, _app):
        await publish(bus, loaded_catalog, POP, people)
        async with httpx.AsyncClient(base_url=url) as client:
            key = people[0]["id_number"]

            async def there() -> bool:
                r = await client.get(
                    f"/v1/resources/{POP}/records/{key}", params=PURPOSE, headers=basic("police")
                )
                return r.status_code == 200

            await poll(there)
        yield url


@pytest.fixture
async def client(gateway: str, seen: Seen) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=gateway, event_hooks={"response": [_remember(seen)]}
    ) as c:
        yield c


def _remember(seen: Seen) -> Any:
    async def hook(r: httpx.Response) -> None:
        await r.aread()
        seen.add(r)

    return hook


def record_url(key: str, resource: str = POP) -> str:
    return f"/v1/resources/{resource}/records/{key}"


async def test_a_granted_key_answers_exactly_the_view(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    person = people[0]
    r = await client.get(record_url(person["id_number"]), params=PURPOSE, headers=basic("hrss"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["record"]) == HRSS_VIEW
    assert body["record"]["name"] == person["name"][0] + "*" * (len(person["name"]) - 1)
    assert body["record"]["address"] == person["address"]
    assert body["record"]["birth_date"] == person["birth_date"].isoformat()
    assert body["masked"] == {"name": "surname"}
    # the provider sees its own records whole (asked outside the canary watch: it may)
    async with httpx.AsyncClient(base_url=client.base_url) as own:
        provider = await own.get(
            record_url(person["id_number"]), params=PURPOSE, headers=basic("police")
        )
    assert provider.json()["record"]["former_name"] == CANARY


async def test_a_filtered_row_and_an_absent_key_get_the_same_404(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    outside = await client.get(
        record_url(people[1]["id_number"]), params=PURPOSE, headers=basic("hrss")
    )
    absent = await client.get(
        record_url("999999999999999999"), params=PURPOSE, headers=basic("hrss")
    )
    assert outside.status_code == absent.status_code == 404
    assert outside.content == absent.content
    assert outside.headers["content-type"] == absent.headers["content-type"]


async def test_credentials_missing_wrong_or_malformed_get_401(client: httpx.AsyncClient) -> None:
    url = record_url("330106194608173785")
    assert (await client.get(url, params=PURPOSE)).status_code == 401
    assert (await client.get(url, params=PURPOSE, headers=basic("hrss", "nope"))).status_code == 401
    bad = await client.get(url, params=PURPOSE, headers={"Authorization": "Basic !!!"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith("Basic")


async def test_no_grant_verification_only_and_non_departments_get_403(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    url = record_url(people[0]["id_number"])
    none = await client.get(url, params=PURPOSE, headers=basic("health"))
    assert none.status_code == 403
    assert "needs an active grant" in none.json()["message"]
    verify_only = await client.get(url, params=PURPOSE, headers=basic("civil_affairs"))
    assert verify_only.status_code == 403
    assert "verification (核验) only" in verify_only.json()["message"]
    auditor = await client.get(url, params=PURPOSE, headers=basic("auditor"))
    assert auditor.status_code == 403


async def test_verification_answers_match_or_not_and_nothing_else(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    p = people[0]
    url = f"/v1/resources/{POP}/verify"
    ok = await client.post(
        url,
        params=PURPOSE,
        headers=basic("civil_affairs"),
        json={"values": {"id_number": p["id_number"], "name": p["name"]}},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"resource": POP, "match": True}
    wrong = await client.post(
        url,
        params=PURPOSE,
        headers=basic("civil_affairs"),
        json={"values": {"id_number": p["id_number"], "name": "某某"}},
    )
    assert wrong.json() == {"resource": POP, "match": False}
    absent = await client.post(
        url,
        params=PURPOSE,
        headers=basic("civil_affairs"),
        json={"values": {"id_number": "000", "name": p["name"]}},
    )
    assert absent.json() == {"resource": POP, "match": False}
    beyond = await client.post(
        url,
        params=PURPOSE,
        headers=basic("civil_affairs"),
        json={"values": {"id_number": p["id_number"], "address": p["address"]}},
    )
    assert beyond.status_code == 403
    assert "may not verify these fields: address" in beyond.json()["message"]
    no_key = await client.post(
        url, params=PURPOSE, headers=basic("civil_affairs"), json={"values": {"name": p["name"]}}
    )
    assert no_key.status_code == 400
    assert "key field 'id_number'" in no_key.json()["message"]


async def test_over_the_quota_answers_429_with_retry_after_then_a_revocation_403s_within_a_second(
    bus: Connection,
    client: httpx.AsyncClient,
    people: list[dict[str, Any]],
    grants: dict[str, str],
) -> None:
    url = record_url(people[2]["id_number"])
    for _ in range(3):
        r = await client.get(url, params=PURPOSE, headers=basic("market"))
        assert r.status_code == 200, r.text
        assert set(r.json()["record"]) == {"name", "region_code", "updated_at"}
    over = await client.get(url, params=PURPOSE, headers=basic("market"))
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) >= 1
    assert "3 requests per day" in over.json()["message"]
    async with Department(bus, "police") as police:
        await police.revoke(grants["market"], reason="合同到期 contract ended")
        revoked_at = time.monotonic()

    async def refused() -> bool:
        r = await client.get(url, params=PURPOSE, headers=basic("market"))
        return r.status_code == 403 and "revoked" in r.json()["message"]

    await poll(refused, within=5)
    assert time.monotonic() - revoked_at < 1.0


@pytest.mark.parametrize(
    ("path", "headers", "code", "says"),
    [
        (record_url("3" * 1000), {}, 400, "at most 256"),
        ("/v1/resources/..%2F..%2Fetc%2Fpasswd/records/1", {}, 400, "is not a resource id"),
        (record_url("%FF%FEabc"), {}, 400, "not UTF-8"),
        (record_url("330106194608173785"), {"X-Purpose": "check%1B%5B31m"}, 400, "U+001B"),
        (record_url("a%00b"), {}, 400, "U+0000"),
    ],
    ids=["long-key", "traversal", "not-utf8", "purpose-control", "nul-in-key"],
)
async def test_hostile_input_is_refused_with_a_clear_error(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], code: int, says: str
) -> None:
    params = {} if "X-Purpose" in headers else PURPOSE
    r = await client.get(path, params=params, headers={**basic("hrss"), **headers})
    assert r.status_code == code, r.text
    assert says in r.json()["message"]


async def test_a_megabyte_key_is_refused_in_the_path_and_in_a_body(
    gateway: str, client: httpx.AsyncClient
) -> None:
    # httpx refuses to send such a URL: a raw request, as a hostile client would send it.
    # uvicorn refuses a request head over 16 KiB: 400 and the connection closed (possibly
    # before reading all we send, so a reset may swallow the 400); never a 5xx
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = basic("hrss")["Authorization"]
    answer = b""
    try:
        writer.write(
            f"GET {record_url('9' * 1_000_000)}?purpose=x HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {auth}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            answer += chunk
    except ConnectionError:
        pass
    finally:
        writer.close()
    if answer:
        assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
        assert b"9" * 300 not in answer
    assert (await client.get("/health")).status_code == 200
    body = await client.post(
        f"/v1/resources/{POP}/verify",
        params=PURPOSE,
        headers=basic("civil_affairs"),
        json={"values": {"id_number": "9" * 1_000_000, "name": "x"}},
    )
    assert body.status_code == 400
    assert "at most 256 are allowed" in body.json()["message"]


async def test_a_purpose_is_required(client: httpx.AsyncClient) -> None:
    r = await client.get(record_url("330106194608173785"), headers=basic("hrss"))
    assert r.status_code == 400
    assert "purpose of use (用途) is required" in r.json()["message"]


async def test_every_request_is_one_audit_entry_with_its_decision_and_no_key_in_clear(
    bus: Connection, client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    purpose = {"purpose": f"audit probe {uuid.uuid4().hex}"}
    key = people[0]["id_number"]
    asked = [
        ("hrss", "GET", key, "answered", 200),
        ("hrss", "GET", people[1]["id_number"], "not_found", 404),
        ("health", "GET", key, "denied", 403),
        ("civil_affairs", "POST", key, "matched", 200),
    ]
    for who, method, k, _decision, status in asked:
        if method == "GET":
            r = await client.get(record_url(k), params=purpose, headers=basic(who))
        else:
            r = await client.post(
                f"/v1/resources/{POP}/verify",
                params=purpose,
                headers=basic(who),
                json={"values": {"id_number": k, "name": people[0]["name"]}},
            )
        assert r.status_code == status, r.text
    # in the gateway's journal before the answer; on the log within the journal's window
    entries: list[Any] = []

    async def logged() -> bool:
        entries[:] = [
            e for _, e in entries_only(await read_log(bus)) if e.purpose == purpose["purpose"]
        ]
        return len(entries) >= len(asked)

    await poll(logged, within=WINDOW_S)
    assert [(e.actor, e.decision) for e in entries] == [(w, d) for w, _, _, d, _ in asked]
    secret = audit_key(MASTER_SECRET)
    for entry, (_who, method, k, _d, status) in zip(entries, asked, strict=True):
        assert isinstance(entry, AuditEntry)
        expected = Action.RECORD_QUERIED if method == "GET" else Action.RECORD_VERIFIED
        assert entry.action is expected
        assert entry.details["key_hash"] == key_hash(secret, k.encode())
        assert entry.details["status"] == str(status)
        assert k not in json.dumps(entry.to_json(), ensure_ascii=False)
    assert entries[0].details["fields"] == "name,birth_date,region_code,address,updated_at"


async def test_the_openapi_document_lists_only_what_the_caller_may_ask(
    client: httpx.AsyncClient,
) -> None:
    hrss = (await client.get("/v1/openapi.json", headers=basic("hrss"))).json()
    record = f"/v1/resources/{POP}/records/{{key}}"
    ok = hrss["paths"][record]["get"]["responses"]["200"]["content"]["application/json"]
    assert set(ok["schema"]["properties"]["record"]["properties"]) == HRSS_VIEW
    assert "/v1/resources/birth_medical_certificate/records/{key}" not in hrss["paths"]
    assert "/v1/resources/business_licence/records/{key}" in hrss["paths"]  # unconditional
    civil = (await client.get("/v1/openapi.json", headers=basic("civil_affairs"))).json()
    assert record not in civil["paths"]
    body = civil["paths"][f"/v1/resources/{POP}/verify"]["post"]["requestBody"]
    values = body["content"]["application/json"]["schema"]["properties"]["values"]
    assert set(values["properties"]) == {"id_number", "name", "region_code", "updated_at"}
    health = (await client.get("/v1/openapi.json", headers=basic("health"))).json()
    assert not [p for p in health["paths"] if POP in p]
    assert (await client.get("/v1/openapi.json")).status_code == 401


async def test_a_published_record_is_answered_within_a_second(
    bus: Connection, loaded_catalog: Catalog, client: httpx.AsyncClient
) -> None:
    row = sample.generate(loaded_catalog.resources[POP].schema_, 1, seed=4242)[0]
    row.update(region_code="330108")
    await publish(bus, loaded_catalog, POP, [row])
    published = time.monotonic()

    async def answered() -> bool:
        r = await client.get(record_url(row["id_number"]), params=PURPOSE, headers=basic("hrss"))
        return r.status_code == 200

    await poll(answered, within=5, every=0.01)
    assert time.monotonic() - published < 1.0


async def test_a_restart_resumes_from_the_store_and_a_damaged_store_is_rebuilt(
    bus: Connection, gateway: str, people: list[dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "credentials").mkdir()
    credentials = write_passwords(tmp_path / "credentials")
    store = tmp_path / "store.sqlite"
    url = record_url(people[0]["id_number"])

    async def run_once() -> tuple[bool, int, int]:
        async with (
            running_gateway(bus, credentials, store) as (base, app),
            httpx.AsyncClient(base_url=base) as c,
        ):
            r = await c.get(url, params=PURPOSE, headers=basic("hrss"))
            assert r.status_code == 200, r.text
            svc = app.state.gateway
            return svc.store.rebuilt, svc.store.count(), svc.materializer.applied

    rebuilt, first, read = await run_once()  # from the topics, into a new file
    assert not rebuilt
    assert first >= len(people)
    assert read >= first
    rebuilt, again, read = await run_once()  # resumed where the rows end: nothing read again
    assert not rebuilt
    assert (again, read) == (first, 0)
    store.write_bytes(b"not a database" * 100)  # damaged (a crash mid-write, a bad disk)
    rebuilt, after, read = await run_once()
    assert rebuilt
    assert after == first
    assert read >= first


async def test_metrics_count_decisions_by_resource_and_consumer(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert 'gov_exchange_gateway_requests_total{consumer="hrss",decision="answered"' in text
    assert 'decision="quota_exceeded"' in text
    assert "gov_exchange_gateway_request_seconds_bucket" in text


async def test_metrics_give_the_stores_records_and_the_records_written_to_it(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    held = (await client.get("/health")).json()["records"]
    text = (await client.get("/metrics")).text
    records = _gauge(text, "gov_exchange_gateway_store_records")
    assert records == held >= len(people)
    assert _gauge(text, "gov_exchange_gateway_store_applied") >= records


def _gauge(text: str, name: str) -> float:
    (value,) = [float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


def _probe(url: str, document: dict[str, Any]) -> tuple[int, list[tuple[str, int, str]]]:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_dict(document)
    problems: list[tuple[str, int, str]] = []
    sent = [0]
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(
            max_examples=8,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            sent[0] += 1
            r = case.call(base_url=url, headers=basic("hrss"))
            if r.status_code >= 500 or CANARY in r.text:
                problems.append((case.operation.label, r.status_code, r.text[:200]))

        check()
    return sent[0], problems


# schemathesis's strategies call random inside hypothesis (their business, not a fault here)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_schemathesis_against_the_callers_openapi_finds_no_5xx(
    client: httpx.AsyncClient, gateway: str
) -> None:
    document = (await client.get("/v1/openapi.json", headers=basic("hrss"))).json()
    sent, problems = await asyncio.to_thread(_probe, gateway, document)
    assert sent >= 40
    assert problems == []


async def test_a_request_signed_with_the_registered_key_is_accepted_once(
    bus: Connection, loaded_catalog: Catalog, client: httpx.AsyncClient
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from exchange.catalog.signing import public_key_of
    from exchange.control import catalog_store
    from exchange.http.signed import authorization

    key = Ed25519PrivateKey.generate()
    keyed = loaded_catalog.with_keys({"market": public_key_of(key)})
    await catalog_store.load(bus, keyed, actor="tests", unsigned_override="test suite")
    target = "/v1/resources/business_licence/records/NO-SUCH-LICENCE?purpose=check"

    async def signed(header: str) -> httpx.Response:
        return await client.get(target, headers={"Authorization": header})

    async def known() -> bool:  # once the gateway follows the catalog with the key
        return (await signed(authorization(key, "market", "GET", target))).status_code == 404

    await poll(known)
    header = authorization(key, "market", "GET", target)
    assert (await signed(header)).status_code == 404  # authenticated: asked, not found
    replay = await signed(header)
    assert replay.status_code == 401
    assert "replay" in replay.json()["message"]
    stale = await signed(authorization(key, "market", "GET", target, now=time.time() - 3600))
    assert stale.status_code == 401
    other = Ed25519PrivateKey.generate()
    forged = await signed(authorization(other, "market", "GET", target))
    assert "does not verify" in forged.json()["message"]
    elsewhere = await signed(authorization(key, "market", "GET", target.replace("NO-", "NA-")))
    assert elsewhere.status_code == 401  # signed for another path
    unkeyed = await signed(authorization(key, "hrss", "GET", target))
    assert "no public key" in unkeyed.json()["message"]


async def test_the_canary_never_appeared_in_any_answer_header_or_error(seen: Seen) -> None:
    assert len(seen.texts) > 40
    assert not [t for t in seen.texts if CANARY in t]

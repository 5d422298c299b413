"""The web console, driven in a real browser (Debian's Chromium through Playwright).

The console is served for real (uvicorn on a loopback port) over the
module's broker with a router running; people log in with argon2-hashed
passwords from an accounts file. One browser for the module, a fresh context
(cookies) per person. A screenshot of every page goes to
``tests/artifacts/console/``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from browser_support import LAUNCH_ARGS, axe_violations, chromium_path, shoot, with_axe
from routing_support import RouterRun, publish, running_router
from starlette.applications import Starlette

from exchange.admin.users import Principals
from exchange.audit.entry import Action
from exchange.audit.log import entries_only, read_log
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.console.accounts import AccountBook
from exchange.console.app import console_app
from exchange.console.service import ConsoleSettings
from exchange.control.state import GRANT_CODEC
from exchange.dev import sample
from exchange.http import server
from exchange.http.metrics import metrics_endpoint
from exchange.sharing.records import EventKind, GrantEvent, now

# a browser, a router and a department session per person: the Kafka lane under load needs
# more than the default 120 s for the scenario (about 50 s on the embedded lane)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.embedded_only(
        "the browser drives the console, whose commands go through the same Department API "
        "the Kafka lane tests with users and ACLs (test_console_signed, test_signed_commands); "
        "on Kafka this module alone took 205 s, too long for every run"
    ),
]

BMC = "birth_medical_certificate"
WANTED = ["mother_name", "mother_id_number"]
PASSWORD = "correct horse battery"
PEOPLE = {
    # user: (department, roles)
    "police-li": ("police", ["applicant"]),
    "health-wang": ("health", ["approver"]),
    "hrss-zhao": ("hrss", ["approver"]),
    "auditor-chen": (None, ["auditor"]),
    "admin-sun": (None, ["catalog_admin"]),
    "police-locked": ("police", ["applicant"]),
}
MAX_FAILURES = 3
OLD_APP = "APP-20200101-0ld0ld00"


def write_accounts(path: Path) -> None:
    lines = ["accounts:"]
    # an argon2id hash carries its own cost: a cheap one keeps a dozen logins fast here
    digest = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    for user, (dept, roles) in PEOPLE.items():
        lines += [f"  - user: {user}", f"    name: {user}", f"    roles: [{', '.join(roles)}]"]
        if dept:
            lines.append(f"    department: {dept}")
        lines.append(f'    password_hash: "{digest}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


@pytest.fixture(scope="module")
async def router_metrics(router: RouterRun) -> AsyncIterator[str]:
    """The router's /metrics, served as ``exchange router --metrics-port`` serves it."""
    app = Starlette()
    app.add_route("/metrics", metrics_endpoint(router.router.metrics.registry))
    async with server.running(app) as url:
        yield f"{url}/metrics"


@pytest.fixture(scope="module")
async def console(
    bus: Connection,
    principals: Principals,
    loaded_catalog: Catalog,
    router_metrics: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[str]:
    accounts = tmp_path_factory.mktemp("console") / "accounts.yaml"
    write_accounts(accounts)
    nobody = f"http://127.0.0.1:{server.free_port()}/metrics"  # an instance that is down
    settings = ConsoleSettings(
        accounts=accounts, router_metrics=[router_metrics, nobody], max_failures=MAX_FAILURES
    )
    book = AccountBook.load(accounts, set(loaded_catalog.departments))
    app = console_app(bus, principals.of, settings, book)
    async with server.running(app) as url:
        # localhost, not 127.0.0.1: the browser keeps the Secure __Host- cookie over plain
        # HTTP only for a host it trusts as local
        yield url.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.fail("Debian's chromium is not installed: run tests/services/require-packages.sh")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=executable, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def signed_in(browser: Any, console: str, user: str, *, axe: bool = False) -> Any:
    """A fresh browser context logged in as ``user``; returns its page."""
    context = await browser.new_context(
        base_url=console, viewport={"width": 1280, "height": 900}, locale="zh-CN"
    )
    if axe:
        await with_axe(context)
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("用户名 User name").fill(user)
    await page.get_by_label("密码 Password").fill(PASSWORD)
    await page.get_by_role("button", name="登录 Log in").click()
    await page.wait_for_url(re.compile(r".*/(catalog|inbox|audit)$"))
    return page


async def flash(page: Any) -> str:
    return str(await page.locator(".flash").first.inner_text())


async def police_applies(police: Any) -> str:
    """The applicant's steps; returns the application id."""
    await shoot(police, "catalog")
    await police.goto(f"/resources/{BMC}")
    for f in WANTED:
        await police.get_by_role("checkbox", name=re.compile(f)).check()
    await police.get_by_label("用途 Purpose of use").fill("新生儿落户 registration of newborns")
    await police.get_by_label("法律依据 Legal basis").fill("《户口登记条例》第七条 art. 7")
    await shoot(police, "apply")
    await police.get_by_role("button", name="提交申请 Submit the application").click()
    found = re.search(r"APP-[\w-]+", await flash(police))
    assert found, await flash(police)
    return found.group(0)


async def write_overdue_application(bus: Connection) -> None:
    """An application police made 40 days ago that health never answered."""
    old = GrantEvent(
        kind=EventKind.APPLIED,
        actor="police",
        consumer="police",
        resource=BMC,
        application_id=OLD_APP,
        fields=("address",),
        purpose="旧申请 an old application",
        at=now() - dt.timedelta(days=40),
    )
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(topics.GRANTS, value=GRANT_CODEC.encode(old.to_avro()))


async def health_approves(health: Any, app_id: str) -> str:
    """The approver's steps: a mask previewed, a row filter checked as typed; the grant id."""
    assert health.url.endswith("/departments/health/inbox")
    pending = health.get_by_test_id("pending")
    assert "逾期 overdue" in await pending.locator("tr", has_text=OLD_APP).inner_text()
    assert "逾期 overdue" not in await pending.locator("tr", has_text=app_id).inner_text()
    await shoot(health, "inbox")
    await health.get_by_role("link", name=f"审批 Answer {app_id}").click()
    await health.get_by_label("脱敏 Mask of mother_id_number").select_option("keep:6:4")
    preview = health.get_by_test_id("mask-preview")
    await preview.get_by_text(re.compile(r"^\d{6}\*{8}\w{4}$")).first.wait_for()
    filter_box = health.get_by_label(re.compile("行过滤 Row filter"))
    check = health.get_by_test_id("filter-check")
    await filter_box.press_sequentially('region_code.startsWith("33"', delay=5)
    await check.get_by_text("表达式无效 invalid expression").wait_for()
    await filter_box.press("End")
    await filter_box.press_sequentially(")", delay=5)
    await check.get_by_text("表达式有效 valid expression").wait_for()
    until = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    await health.get_by_label(re.compile("有效期至 Valid until")).fill(until)
    await shoot(health, "approve")
    await health.get_by_role("button", name="批准 Approve").click()
    found = re.search(r"GR-[\w-]+", await flash(health))
    assert found, await flash(health)
    return found.group(0)


async def police_sees_its_view(police: Any, app_id: str, grant_id: str) -> None:
    await police.goto(f"/resources/{BMC}")
    view = police.get_by_test_id("my-view")
    await view.get_by_text(f"授权 Grant {grant_id}").wait_for()
    text = await view.inner_text()
    assert "mother_id_number = keep:6:4" in text
    assert 'region_code.startsWith("33")' in text
    await shoot(police, "my-view")
    await police.goto("/applications")
    assert grant_id in await police.get_by_test_id(f"application-{app_id}").inner_text()
    await shoot(police, "applications")


async def health_revokes(health: Any, police: Any, grant_id: str) -> None:
    await health.goto("/grants")
    await health.get_by_label(f"撤销理由 Reason to revoke {grant_id}").fill("落户办结 done")
    await health.get_by_role("button", name="撤销 Revoke").click()
    assert grant_id in await flash(health)
    assert "revoked" in await health.get_by_test_id("grants").inner_text()
    await shoot(health, "grants")
    await police.goto(f"/resources/{BMC}")
    assert "mother_id_number = keep" not in await police.get_by_test_id("my-view").inner_text()


async def auditor_finds_each_step(auditor: Any, grant_id: str) -> None:
    status = await auditor.get_by_test_id("chain-status").inner_text()
    assert "哈希链完整 Chains verified intact" in status, status
    steps = {
        "police-li": [Action.APPLICATION_SUBMITTED],
        "health-wang": [Action.APPLICATION_APPROVED, Action.GRANT_REVOKED],
    }
    for person, actions in steps.items():
        await auditor.goto(f"/audit?person={person}")
        log_text = await auditor.get_by_test_id("log").inner_text()
        for action in actions:
            assert action.value in log_text, (person, action, log_text)
    await auditor.goto(f"/audit?grant={grant_id}")
    await shoot(auditor, "audit")
    csv = await auditor.request.get("/audit.csv?person=health-wang")
    assert csv.status == 200
    assert grant_id in await csv.text()
    await auditor.goto("/report")
    await auditor.locator("#chart-delivered").wait_for()
    await shoot(auditor, "report")
    await auditor.goto("/router-health")
    live, gone = await auditor.get_by_test_id("instance-status").all_inner_texts()
    # up; whether it also counts as healthy depends on how loaded the broker is (stalls)
    assert "down" not in live
    assert "已投递记录 records delivered" in await auditor.locator("main").inner_text()
    assert "down" in gone
    await shoot(auditor, "router-health")


async def test_birth_scenario_in_the_browser(
    browser: Any, console: str, bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    """出生一件事: police applies, health approves with a mask and a row filter, police sees
    its view, health revokes, the auditor finds each step and the chains verified."""
    police = await signed_in(browser, console, "police-li")
    app_id = await police_applies(police)
    await write_overdue_application(bus)
    health = await signed_in(browser, console, "health-wang")
    grant_id = await health_approves(health, app_id)
    await police_sees_its_view(police, app_id, grant_id)
    # records flow under the grant, so the report has deliveries to draw
    records = sample.generate(loaded_catalog.resources[BMC].schema_, 12, seed=7)
    await publish(bus, loaded_catalog, BMC, records)
    await health_revokes(health, police, grant_id)
    auditor = await signed_in(browser, console, "auditor-chen")
    await auditor_finds_each_step(auditor, grant_id)
    # the Python API reads the same entries: the person beside the department
    entries = [e for _, e in entries_only(await read_log(bus))]
    by_person = {(e.action, e.details.get("person")) for e in entries}
    assert (Action.APPLICATION_SUBMITTED, "police-li") in by_person
    assert (Action.APPLICATION_APPROVED, "health-wang") in by_person
    assert (Action.GRANT_REVOKED, "health-wang") in by_person
    for ctx_page in (police, health, auditor):
        await ctx_page.context.close()


async def test_another_departments_approver_is_refused(
    browser: Any, console: str, bus: Connection, loaded_catalog: Catalog
) -> None:
    """hrss's approver can neither see health's inbox nor answer health's application."""
    async with Department(bus, "police") as police:
        app_id = await police.apply(BMC, fields=["mother_name"], purpose="测试 cross-department")
    hrss = await signed_in(browser, console, "hrss-zhao")
    answer = await hrss.goto("/departments/health/inbox")
    assert answer is not None
    assert answer.status == 403
    assert "health" in await hrss.get_by_test_id("refusal").inner_text()
    await shoot(hrss, "refused-403")
    answer = await hrss.goto(f"/applications/{app_id}")
    assert answer is not None
    assert answer.status == 403
    # posting the approval anyway (with hrss's own valid token): the permission manager refuses
    await hrss.goto("/departments/hrss/inbox")
    token = await hrss.locator("input[name=csrf_token]").first.input_value()
    posted = await hrss.request.post(
        f"/applications/{app_id}/approve",
        form={"csrf_token": token, "fields": "mother_name"},
        max_redirects=0,
    )
    assert posted.status == 403
    assert "provider" in (await posted.text()).lower()
    await hrss.context.close()
    async with Department(bus, "health") as health:
        assert health.state.book.applications[app_id].status.value == "pending"
    # the refusal is audited with the person who tried (read after the log was read before)
    auditor = await signed_in(browser, console, "auditor-chen")
    await auditor.goto("/audit?person=hrss-zhao&action=COMMAND_REFUSED")
    assert app_id in await auditor.get_by_test_id("log").inner_text()
    await auditor.context.close()


async def test_a_form_without_its_csrf_token_is_refused(
    browser: Any, console: str, bus: Connection
) -> None:
    police = await signed_in(browser, console, "police-li")
    before = await _applications(bus)
    for form in (
        {"purpose": "p", "legal_basis": "b", "fields": "mother_name"},
        {"purpose": "p", "legal_basis": "b", "fields": "mother_name", "csrf_token": "forged"},
    ):
        posted = await police.request.post(f"/resources/{BMC}/apply", form=form, max_redirects=0)
        assert posted.status == 403
        assert "CSRF" in await posted.text()
    assert await _applications(bus) == before
    await police.context.close()


async def _applications(bus: Connection) -> int:
    async with Department(bus, "police") as police:
        return len(police.state.book.applications)


async def test_wrong_passwords_lock_the_account(browser: Any, console: str) -> None:
    context = await browser.new_context(base_url=console)
    page = await context.new_page()
    await page.goto("/login")
    for attempt in range(MAX_FAILURES):
        await page.get_by_label("用户名 User name").fill("police-locked")
        await page.get_by_label("密码 Password").fill(f"wrong-{attempt}")
        await page.get_by_role("button", name="登录 Log in").click()
        error = await page.get_by_test_id("login-error").inner_text()
    assert "锁定" in error
    assert "locked" in error
    await shoot(page, "locked")
    await page.get_by_label("密码 Password").fill(PASSWORD)  # the right one: refused all the same
    await page.get_by_role("button", name="登录 Log in").click()
    assert "locked" in await page.get_by_test_id("login-error").inner_text()
    assert page.url.endswith("/login")
    await context.close()


async def test_forms_are_labelled_and_keyboard_usable(browser: Any, console: str) -> None:
    """axe-core finds no WCAG 2 A/AA violation on the pages with forms; login works by keyboard."""
    context = await browser.new_context(base_url=console, locale="zh-CN")
    await with_axe(context)
    page = await context.new_page()
    await page.goto("/login")
    assert await axe_violations(page) == []
    await page.keyboard.press("Tab")  # the skip link first
    await page.keyboard.press("Tab")
    await page.keyboard.type("police-li")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r".*/catalog$"))
    for path in (f"/resources/{BMC}", "/grants"):
        await page.goto(path)
        assert await axe_violations(page) == [], path
    await context.close()
    health = await signed_in(browser, console, "health-wang", axe=True)
    assert await axe_violations(health) == [], "inbox"
    link = health.get_by_role("link", name=re.compile("审批 Answer"))
    if await link.count():
        await link.first.click()
        await health.get_by_test_id("filter-check").get_by_text("row filter").wait_for()
        assert await axe_violations(health) == [], "approval form"
    await health.context.close()
    auditor = await signed_in(browser, console, "auditor-chen", axe=True)
    assert await axe_violations(auditor) == [], "access log"
    await auditor.context.close()


async def test_console_answers_plain_http_checks(console: str) -> None:
    """Unauthenticated pages send the browser to the login page, with the security headers."""
    async with httpx.AsyncClient(base_url=console) as client:
        answer = await client.get("/grants")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login"
        login = await client.get("/login")
        assert "default-src 'self'" in login.headers["content-security-policy"]
        cookie = login.headers["set-cookie"]
        assert "__Host-" in cookie
        assert "HttpOnly" in cookie
        assert "Secure" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()


async def test_roles_decide_the_pages(browser: Any, console: str) -> None:
    """A catalog administrator watches the router but does not read the access log."""
    admin = await signed_in(browser, console, "admin-sun")
    status = await admin.get_by_test_id("catalog-status").inner_text()
    assert "5 个部门 departments" in status
    await shoot(admin, "catalog-admin")
    answer = await admin.goto("/router-health")
    assert answer is not None
    assert answer.status == 200
    answer = await admin.goto("/audit")
    assert answer is not None
    assert answer.status == 403
    assert "auditor" in await admin.get_by_test_id("refusal").inner_text()
    await admin.context.close()

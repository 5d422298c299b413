"""Logging in and out (登录 / 退出), with lock-out after repeated failures."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from exchange.console.routes.common import (
    CsrfChecked,
    Service,
    page,
    redirect,
    session_of,
)

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/login")
async def login_form(request: Request, svc: Service) -> Response:
    s = session_of(request)
    if s is not None and s.person is not None:
        return redirect("/")
    if s is None:  # a session before login, for the form's CSRF token
        s = svc.sessions.new()
    request.state.session = s
    response = page(request, "login.html")
    response.set_cookie(value=s.id, **svc.sessions.cookie_options())  # type: ignore[arg-type]
    return response


@router.post("/login")
async def login(
    request: Request,
    svc: Service,
    before: CsrfChecked,
    user: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
) -> Response:
    user = user.strip()
    locked = svc.lockout.locked_for(user)
    person = None if locked else svc.accounts.check(user, password)
    if person is None:
        if locked:
            message = f"账户已锁定 the account is locked for {int(locked // 60) + 1} more minute(s)"
        elif svc.lockout.failed(user):
            minutes = int(svc.settings.lock_minutes)
            message = (
                f"连续多次登录失败，账户已锁定 too many failed logins: the account is locked "
                f"for {minutes} minute(s)"
            )
            log.warning("console account %r locked after repeated failed logins", user)
        else:
            message = "用户名或密码错误 wrong user name or password"
        log.info("console login refused for %r", user)
        return page(request, "login.html", status=401, error=message, user=user)
    svc.lockout.succeeded(user)
    if before is not None:
        svc.sessions.end(before.id)
    s = svc.sessions.new(person)  # a new id at login: one planted before is worth nothing
    log.info("console login: %s (%s)", person.user, person.department or "no department")
    response = redirect("/")
    response.set_cookie(value=s.id, **svc.sessions.cookie_options())  # type: ignore[arg-type]
    return response


@router.post("/logout")
async def logout(request: Request, svc: Service, s: CsrfChecked) -> Response:
    if s is not None:
        svc.sessions.end(s.id)
    response = redirect("/login")
    response.delete_cookie(svc.sessions.cookie, path="/", secure=svc.sessions.secure)
    return response

"""What every page shares: templates, the signed-in person, role checks, CSRF, error pages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from exchange import beijing
from exchange.console.accounts import Person, Role
from exchange.console.service import ConsoleService
from exchange.console.sessions import Session
from exchange.errors import CommandRefused, ExchangeError, PermissionDenied, UnknownResource
from exchange.http.errors import HttpError
from exchange.sharing.records import now

log = logging.getLogger(__name__)
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
TEMPLATES.env.globals["shown"] = beijing.shown


class LoginRequired(Exception):
    """No signed-in session: the browser is sent to the login page."""


class Refused(Exception):
    """A page answers with an error page: ``status`` and the message shown."""

    def __init__(self, status: int, message: str, *, title: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.title = status, message, title


def service(request: Request) -> ConsoleService:
    svc: ConsoleService = request.app.state.console
    return svc


Service = Annotated[ConsoleService, Depends(service)]


def session_of(request: Request) -> Session | None:
    svc = service(request)
    return svc.sessions.get(request.cookies.get(svc.sessions.cookie))


def signed_in(request: Request) -> Session:
    s = session_of(request)
    if s is None or s.person is None:
        raise LoginRequired()
    request.state.session = s
    return s


SignedIn = Annotated[Session, Depends(signed_in)]


def need(session: Session, role: Role) -> Person:
    """The person, if they hold ``role``; 403 otherwise."""
    person = session.person
    assert person is not None
    if not person.has(role):
        raise Refused(403, f"此页面需要{role.label}角色 this page needs the role {role.label}")
    return person


async def csrf_checked(request: Request) -> Session | None:
    """For every POST: the session's CSRF token must come with it (form field or header)."""
    s = session_of(request)
    token = request.headers.get("x-csrf-token")
    if token is None:
        form = await request.form()
        value = form.get("csrf_token")
        token = value if isinstance(value, str) else None
    if s is None or not s.csrf_ok(token):
        log.warning("refused a POST to %s without its CSRF token", request.url.path)
        raise Refused(
            403,
            "请求缺少有效的防伪令牌 the form was sent without its anti-forgery (CSRF) token, "
            "or the session ended: reload the page and try again",
            title="CSRF",
        )
    return s


CsrfChecked = Annotated[Session | None, Depends(csrf_checked)]


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    s: Session | None = getattr(request.state, "session", None) or session_of(request)
    flash = list(s.flash) if s else []
    if s:
        s.flash.clear()
    context.setdefault("at", now())
    context.update(
        person=s.person if s else None,
        csrf=s.csrf if s else "",
        flash=flash,
        Role=Role,
        path=request.url.path,
    )
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _error(request: Request, status: int, message: str, title: str = "") -> HTMLResponse:
    return page(request, "error.html", status=status, message=message, title=title)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _error(request, exc.status, exc.message, exc.title)


async def _login_required(request: Request, exc: Exception) -> Response:
    return redirect("/login")


async def _exchange_error(request: Request, exc: Exception) -> Response:
    """A refusal of the permission manager, with its reason: 403; an unknown id: 404."""
    assert isinstance(exc, ExchangeError)
    if isinstance(exc, PermissionDenied | CommandRefused):
        return _error(request, 403, exc.message, "权限管理器拒绝 refused by the permission manager")
    if isinstance(exc, UnknownResource):
        return _error(request, 404, exc.message, "未找到 not found")
    if exc.retriable:  # the broker is away, say: try again later
        return _error(request, 503, exc.message, "暂时无法处理 unavailable for now; try again")
    return _error(request, 400, exc.message, "请求无法执行 the request cannot be carried out")


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HttpError):
        return _error(request, exc.status, exc.message)
    assert isinstance(exc, StarletteHTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("console page %s failed", request.url.path, exc_info=exc)
    return _error(request, 500, "内部错误 an internal error; the console's log has the details")


def install(app: FastAPI) -> None:
    """HTML error pages instead of the API stack's JSON bodies."""
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ExchangeError, _exchange_error)
    app.add_exception_handler(HttpError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

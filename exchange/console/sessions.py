"""Sessions (会话) and CSRF tokens, kept on the server; the browser holds an opaque id only.

The cookie is ``HttpOnly``, ``SameSite=Strict`` and, unless turned off for
plain-HTTP development, ``Secure`` with the ``__Host-`` prefix (no Domain,
Path ``/``, HTTPS only). Each session carries its own CSRF token
(synchronizer token): every form posts it in a hidden field and htmx sends it
in the ``X-CSRF-Token`` header; a POST without the session's token is refused.
A login replaces the session (new id, new token), so an id planted before
login is worth nothing after it. Sessions end after ``idle_s`` without a
request or ``max_s`` in all.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exchange.console.accounts import Person


@dataclass
class Session:
    id: str
    csrf: str
    person: Person | None  # None before login (the login form's own CSRF token)
    created: float
    seen: float
    flash: list[str] = field(default_factory=list)

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf.encode(), token.encode())


class SessionStore:
    def __init__(
        self,
        *,
        secure: bool = True,
        idle_s: float = 1800.0,
        max_s: float = 8 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secure = secure
        self.cookie = "__Host-exchange-console" if secure else "exchange-console"
        self.idle_s, self.max_s = idle_s, max_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def new(self, person: Person | None = None) -> Session:
        now = self._clock()
        if len(self._sessions) > 50_000:
            self._expire(now)
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), person, now, now)
        self._sessions[s.id] = s
        return s

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        s = self._sessions.get(session_id)
        now = self._clock()
        if s is None or now - s.seen > self.idle_s or now - s.created > self.max_s:
            self._sessions.pop(session_id, None)
            return None
        s.seen = now
        return s

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        self._sessions = {
            k: s
            for k, s in self._sessions.items()
            if now - s.seen <= self.idle_s and now - s.created <= self.max_s
        }

    def cookie_options(self) -> dict[str, object]:
        return {
            "key": self.cookie,
            "httponly": True,
            "secure": self.secure,
            "samesite": "strict",
            "path": "/",
        }

"""Failed logins, counted per client: after too many in a window the client waits (429).

A client (an IP address, as the ASGI server reports it) that sends wrong
credentials ``max_failures`` times within ``window_s`` seconds is blocked for
``block_s`` seconds: every request of it that carries credentials is then
answered 429 with ``Retry-After``, before its password is checked, so a
password cannot be guessed faster than that. A successful login does not
clear the count (a guesser holding one valid password would otherwise reset
it at will). Memory is bounded: past ``max_clients`` the oldest records are
forgotten.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: defaults, also those of the settings EXCHANGE_HTTP_LOGIN_*
MAX_FAILURES = 10
WINDOW_S = 60.0
BLOCK_S = 300.0


@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class LoginThrottle:
    """Counts each client's failed logins; says whether (and how long) it must wait."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        block_s: float = BLOCK_S,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, not {max_failures}")
        if window_s <= 0 or block_s <= 0:
            raise ValueError(f"window_s and block_s must be positive, not {window_s}, {block_s}")
        self.max_failures = max_failures
        self.window_s = window_s
        self.block_s = block_s
        self.max_clients = max_clients
        self.clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds ``client`` must still wait, or None if it may try now."""
        state = self._clients.get(client)
        if state is None:
            return None
        left = state.blocked_until - self.clock()
        return math.ceil(left) if left > 0 else None

    def failed(self, client: str) -> bool:
        """Count a failed login of ``client``; True if this one blocks it (once per block)."""
        now = self.clock()
        state = self._clients.pop(client, None) or _Client()
        self._clients[client] = state  # most recent last
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        failures = state.failures
        failures.append(now)
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if len(failures) >= self.max_failures and state.blocked_until <= now:
            state.blocked_until = now + self.block_s
            failures.clear()
            return True
        return False

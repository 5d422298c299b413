"""Lock-out after repeated failed logins (锁定): per account, in the console's memory.

After ``max_failures`` wrong passwords in a row, the account is locked for
``lock_s`` seconds: every login, the right password included, is refused
until then. A successful login clears the count. Unknown user names are
counted too, so probing names costs the same as probing passwords. Several
console instances each keep their own count (a person then gets at most
``max_failures`` tries per instance); the accounts file is the shared part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Tries:
    failures: int = 0
    locked_until: float = 0.0


class Lockout:
    def __init__(
        self,
        max_failures: int = 5,
        lock_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.lock_s = lock_s
        self._clock = clock
        self._tries: dict[str, _Tries] = {}

    def locked_for(self, user: str) -> float:
        """Seconds the account stays locked (0 if it is not)."""
        t = self._tries.get(user)
        return max(0.0, t.locked_until - self._clock()) if t else 0.0

    def failed(self, user: str) -> bool:
        """Count a failure; True if it locked the account."""
        if len(self._tries) > 100_000:  # bounded: forget accounts neither locked nor failing
            now = self._clock()
            self._tries = {u: t for u, t in self._tries.items() if t.locked_until > now}
        t = self._tries.setdefault(user, _Tries())
        t.failures += 1
        if t.failures >= self.max_failures:
            t.failures = 0
            t.locked_until = self._clock() + self.lock_s
            return True
        return False

    def succeeded(self, user: str) -> None:
        self._tries.pop(user, None)

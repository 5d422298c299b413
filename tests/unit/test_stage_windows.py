"""The stage under way, found without building every window, is the last window."""

from __future__ import annotations

import datetime as dt
import random

from exchange.sharing import stages
from exchange.sharing.stages import Stage, Step

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _steps(rng: random.Random, n: int) -> tuple[Step, ...]:
    at, out = T0, []
    for i in range(n):
        at += dt.timedelta(hours=rng.randint(1, 40))
        out.append(Step.of(f"s{i}", "dept", at, rng.choice(list(Stage))))
    return tuple(out)


def test_last_window_is_the_last_of_windows() -> None:
    rng = random.Random(7)
    limits = {"review": 3, "answer": 10}
    for n in [1, 2, 3, 5, 8, 13] * 40:
        steps = _steps(rng, n)
        assert stages.last_window(steps, limits) == stages.windows(steps, limits)[-1], steps


def test_repeated_steps_into_one_stage_extend_it_back() -> None:
    a = Step.of("applied", "police", T0, Stage.REVIEW)
    b = Step.of("authorised", "bureau", T0 + dt.timedelta(days=1), Stage.NEGOTIATION)
    c = Step.of("message", "police", T0 + dt.timedelta(days=2), Stage.NEGOTIATION)
    window = stages.last_window((a, b, c), {})
    assert (window.stage, window.start, window.end) == (Stage.NEGOTIATION, b.at, None)

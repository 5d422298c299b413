"""Driving Debian's Chromium with Playwright (from PyPI) for the console's tests. Not a test module.

``playwright install`` cannot download a browser on these machines, so the
tests launch ``/usr/bin/chromium`` (Debian's package ``chromium``, which
``tests/services/require-packages.sh`` installs) through its executable
path, headless, with a fresh profile and the background networking that the
closed network would refuse turned off. Screenshots go to
``tests/artifacts/console/`` (ignored by git); the accessibility check
injects axe-core (vendored from npm, MPL-2.0) into the page.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's Chromium, if installed."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


async def shoot(page: Any, name: str) -> Path:
    """A full-page screenshot of ``page`` as ``tests/artifacts/console/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now (an empty list: none).

    The page's context must have axe as an init script (:func:`with_axe`): a script tag
    would be refused by the console's Content-Security-Policy, as it should be.
    """
    result = await page.evaluate(
        "async () => (await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, "
        "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    return list(result)


async def with_axe(context: Any) -> None:
    """Load axe-core in every page of ``context`` before the page's own scripts."""
    await context.add_init_script(path=str(AXE))

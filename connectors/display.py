"""The progress of ``exchange connect run``: one status line redrawn in a terminal.

In a terminal the connectors' progress (a first load's rows done of the
estimated total, the rate and the time left) is a single line at the bottom,
redrawn in place a few times a second; every other line (notes, errors,
retries) is printed above it. When the output is not a terminal (a log file,
systemd's journal) nothing is redrawn: :func:`connectors.runner.run_all`
prints a progress line every few seconds instead.
"""

from __future__ import annotations

import shutil
from typing import TextIO

_CLEAR = "\r\x1b[K"  # back to the start of the line, erase it


class StatusLine:
    """A status line kept at the bottom of a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._status = ""

    def show(self, text: str) -> None:
        """Replace the status line by ``text`` (cut to the terminal's width)."""
        width = shutil.get_terminal_size((120, 24)).columns
        self._status = text if len(text) < width else text[: max(width - 2, 1)] + "…"
        self.out.write(_CLEAR + self._status)
        self.out.flush()

    def echo(self, line: str) -> None:
        """Print ``line`` above the status line."""
        self.out.write(_CLEAR + line + "\n" + self._status)
        self.out.flush()

    def clear(self) -> None:
        self._status = ""
        self.out.write(_CLEAR)
        self.out.flush()

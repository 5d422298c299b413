"""Plain-text tables for terminals, with Chinese characters counted as two columns.

:func:`fitted` keeps a table within the terminal's width (``shutil.get_terminal_size``):
its last column wraps, or goes on indented lines under each row when too little room
is left for it beside the others.
"""

from __future__ import annotations

import unicodedata


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` display columns, marking the cut with '…'."""
    if width(text) <= limit:
        return text
    out, used = [], 0
    for c in text:
        w = width(c)
        if used + w > limit - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def table(rows: list[list[str]], headers: list[str]) -> str:
    cols = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c + " " * (cols[i] - width(c)) for i, c in enumerate(cells)).rstrip()

    out = [line(headers), line(["-" * c for c in cols])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


MIN_WRAPPED = 30  # narrowest a wrapped last column may be beside the others
MIN_CLIPPED = 6  # narrowest another column is clipped to when even they do not fit
INDENT = "    "


def wrap(text: str, limit: int, max_lines: int) -> list[str]:
    """``text`` in at most ``max_lines`` lines of at most ``limit`` columns, broken at
    spaces where possible; '…' ends the last line if anything was left out."""
    limit = max(limit, MIN_CLIPPED)  # room for a wide character and '…' whatever is asked
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        joined = f"{line} {word}" if line else word
        if width(joined) <= limit:
            line = joined
            continue
        if line:
            lines.append(line)
        while width(word) > limit:  # longer than a line: cut where the line ends
            head = clip(word, limit + 1)[:-1]
            lines.append(head)
            word = word[len(head) :]
        line = word
    lines.append(line)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], clip(lines[max_lines - 1] + " …", limit)]
    return lines


def _widths(rows: list[list[str]], headers: list[str]) -> list[int]:
    return [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(headers)]


def fitted(rows: list[list[str]], headers: list[str], limit: int, *, max_lines: int = 3) -> str:
    """Like :func:`table`, but at most ``limit`` columns wide.

    The last column wraps (at most ``max_lines`` lines per row); when fewer than
    ``MIN_WRAPPED`` columns would be left for it, it goes under each row, indented,
    and the other columns but the first are clipped, widest first, if even they are
    too wide. A table of a single column is returned as :func:`table` makes it.
    """
    cols = _widths(rows, headers)
    if len(cols) < 2 or sum(cols) + 2 * (len(cols) - 1) <= limit:
        return table(rows, headers)
    fixed = cols[:-1]
    room = limit - sum(fixed) - 2 * len(fixed)
    if room >= MIN_WRAPPED:
        wrapped = []
        for r in rows:
            for n, part in enumerate(wrap(r[-1], room, max_lines)):
                wrapped.append([*(r[:-1] if n == 0 else [""] * len(fixed)), part])
        return table(wrapped, headers)
    # the first column (a time, an id) is never clipped; the others widest first
    while sum(fixed) + 2 * (len(fixed) - 1) > limit and max([0, *fixed[1:]]) > MIN_CLIPPED:
        fixed[fixed.index(max(fixed[1:]), 1)] -= 1
    lines = table(
        [[clip(c, fixed[i]) for i, c in enumerate(r[:-1])] for r in rows],
        [clip(h, fixed[i]) for i, h in enumerate(headers[:-1])],
    ).splitlines()
    out = [lines[0], INDENT + headers[-1], lines[1]]
    for r, line in zip(rows, lines[2:], strict=True):
        out.append(line)
        out.extend(INDENT + part for part in wrap(r[-1], limit - len(INDENT), max_lines))
    return "\n".join(out)

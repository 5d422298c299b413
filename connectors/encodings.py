"""Text encodings of department files: which ones, and what to say when a file is not in its own.

Files exported from Excel on Chinese Windows are usually GB18030 (a superset
of GBK and GB2312), not UTF-8. A file connector names its encoding
(``encoding: gb18030``; any codec Python knows). When a file does not decode
in the configured encoding, :func:`decode_problem` says where, and which
encoding the file looks like (a cheap trial decode of its first megabytes),
so the fix is one line of configuration.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT = "utf-8"
#: tried, in order, when a file does not decode in the configured encoding
_CANDIDATES = ("utf-8", "gb18030")
_SAMPLE_BYTES = 4 * 1024 * 1024


def canonical(name: str) -> str:
    """The codec's canonical name (``GBK`` → ``gbk``); ValueError for a name Python does not know."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(
            f"unknown encoding {name!r}: use utf-8, utf-8-sig, gb18030 (covers GBK and "
            "GB2312) or another codec Python knows"
        ) from None
    try:
        codecs.getincrementaldecoder(info.name)
        "".encode(info.name)
    except (LookupError, TypeError):
        raise ValueError(f"{name!r} is not a text encoding") from None
    return info.name


def for_reading(name: str) -> str:
    """UTF-8 files from Windows often start with a byte order mark: reading ``utf-8`` skips it."""
    return "utf-8-sig" if canonical(name) == "utf-8" else canonical(name)


def looks_like(path: Path, configured: str) -> str | None:
    """The first other encoding in which the start of ``path`` decodes cleanly, or None."""
    try:
        with path.open("rb") as fh:
            sample = fh.read(_SAMPLE_BYTES)
    except OSError:
        return None
    configured = canonical(configured).replace("-sig", "")
    for candidate in _CANDIDATES:
        if candidate == configured:
            continue
        # final=False: a sample cut inside a multi-byte character is not a decoding error
        decoder = codecs.getincrementaldecoder(candidate)()
        try:
            decoder.decode(sample, final=len(sample) < _SAMPLE_BYTES)
        except UnicodeDecodeError:
            continue
        return candidate
    return None


class Undecodable(ValueError):
    """Bytes that are not text in the file's encoding, on physical line ``line`` (from 1)."""

    def __init__(self, line: int, exc: UnicodeDecodeError) -> None:
        super().__init__(str(exc))
        self.line = line
        self.exc = exc


def text_lines(raw: Iterable[bytes], encoding: str) -> Iterator[str]:
    """Decode ``raw`` (a binary file, line by line) into text lines, newlines kept.

    One incremental decoder for the whole file, so every codec works (a
    character may span lines' bytes in UTF-16); only complete lines are
    yielded. A decoding error raises :class:`Undecodable` with the physical line.
    """
    decoder = codecs.getincrementaldecoder(for_reading(encoding))()
    pending = ""
    number = 0
    for number, chunk in enumerate(raw, start=1):
        try:
            pending += decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise Undecodable(number, exc) from None
        if "\n" in pending:
            *complete, pending = pending.split("\n")
            for text in complete:
                yield text + "\n"
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise Undecodable(max(number, 1), exc) from None
    if pending:
        yield pending


def utf8_under_another(path: Path, encoding: str) -> str | None:
    """Why a file that is UTF-8 must not be read in the (legacy) ``encoding``, or None.

    Legacy encodings such as GB18030 decode almost any byte sequence, so a UTF-8
    file read as GB18030 gives no error, only wrong characters (mojibake) on the
    bus. Text with bytes beyond ASCII that is valid UTF-8 is practically never
    GB18030 text; such a file is refused with the fix.
    """
    if canonical(encoding).startswith("utf"):
        return None
    try:
        with path.open("rb") as fh:
            sample = fh.read(_SAMPLE_BYTES)
    except OSError:
        return None
    if sample.isascii():
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(sample) < _SAMPLE_BYTES)
    except UnicodeDecodeError:
        return None
    return (
        f"the file is UTF-8 text, but the connector reads it as {encoding}, which would turn "
        "its Chinese characters into other ones: set encoding: utf-8 for this connector"
    )


def decode_problem(path: Path, encoding: str, error: Undecodable) -> str:
    """The message for a file that is not valid text in ``encoding``, with a hint when one fits."""
    exc = error.exc
    bad = exc.object[exc.start : min(exc.end, exc.start + 4)]
    message = (
        f"not {encoding} text (bytes {bytes(bad).hex(' ')} at byte {exc.start + 1} of the "
        "line cannot be decoded)"
    )
    other = looks_like(path, encoding)
    if other is not None:
        message += f"; the file looks like {other}: set encoding: {other} for this connector"
    return message

"""What a request must carry, checked before anything is looked up: key, purpose, names.

Each check raises :class:`BadRequest` with a message naming the part of the
request at fault, never quoting more than a short, escaped piece of it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from exchange.catalog.model import SLUG
from exchange.errors import CommandRefused
from exchange.sharing import limits

#: longest key accepted: ids, certificate and licence numbers are far shorter
MAX_KEY_CHARS = 256
#: longest purpose of use accepted
MAX_PURPOSE_CHARS = 500
_RESOURCE = re.compile(SLUG)


class BadRequest(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def check_path_bytes(raw_path: bytes) -> None:
    """The request path, percent-decoded, must be UTF-8."""
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            40003, f"the request path holds bytes that are not UTF-8 (at byte {exc.start})"
        ) from None


def check_resource(resource: str) -> None:
    if not _RESOURCE.match(resource):
        raise BadRequest(
            40004,
            f"{limits.shown(resource)} is not a resource id (lower-case letters, digits and "
            "'_', 2 to 40 characters)",
        )


def check_key(key: str) -> bytes:
    """The key as the source topics hold it (UTF-8 of the key field's value)."""
    if not key:
        raise BadRequest(40001, "the key is empty")
    if len(key) > MAX_KEY_CHARS:
        raise BadRequest(
            40001, f"the key is {len(key)} characters long; at most {MAX_KEY_CHARS} are allowed"
        )
    try:
        limits.check_id(key, "key")
    except CommandRefused as exc:
        raise BadRequest(40001, exc.message) from None
    return key.encode("utf-8")


def purpose_of(header: str | None, query: str | None) -> str:
    """The purpose of use (用途): ``X-Purpose`` (percent-encoded UTF-8) or ``?purpose=``."""
    if header is not None:
        try:
            text = unquote(header, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(40002, "X-Purpose is not percent-encoded UTF-8") from None
        where = "X-Purpose"
    elif query is not None:
        text, where = query, "the purpose parameter"
    else:
        raise BadRequest(
            40002,
            "a purpose of use (用途) is required: send X-Purpose (percent-encoded UTF-8) "
            "or ?purpose=...",
        )
    if not text.strip():
        raise BadRequest(40002, f"{where} is empty: say what the data is for (用途)")
    try:
        limits.check_text(text, where, limit=MAX_PURPOSE_CHARS)
    except CommandRefused as exc:
        raise BadRequest(40002, exc.message) from None
    return text.strip()


def comparable_value(value: Any) -> Any:
    """A record's value as a verification compares it with JSON: text, number, bool or null."""
    from exchange.avro.jsoncodec import to_jsonable

    return to_jsonable(value)

"""The lookup reads its purpose from the raw request as Starlette's headers and query would."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from exchange.gateway.api import purpose_given


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ([], b""),
        ([(b"x-purpose", b"%E4%BD%8E%E4%BF%9D")], b""),
        ([(b"authorization", b"Basic eA=="), (b"x-purpose", b"a"), (b"x-purpose", b"b")], b""),
        ([(b"x-purpose", b"\xe4\xbd\x8e")], b"purpose=x"),  # bytes that are not latin-1 text
        ([], b"purpose=%E7%A4%BE%E4%BF%9D+benefits"),
        ([], b"purpose=first&other=1&purpose=last"),
        ([], b"purpose="),
        ([], b"purpose"),
        ([], b"purpose=%ZZ&x=%FF"),
        ([(b"x-purposes", b"not it")], b"purposes=not+it"),
    ],
)
def test_the_purpose_is_read_as_starlette_reads_it(
    headers: list[tuple[bytes, bytes]], query: bytes
) -> None:
    scope = {"type": "http", "headers": headers, "query_string": query}
    request = Request(scope)
    expected = (request.headers.get("x-purpose"), request.query_params.get("purpose"))
    assert purpose_given(scope) == expected

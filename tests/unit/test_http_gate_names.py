"""The HTTP gate names the caller by department id, also for Strimzi's user names.

On Strimzi a department ``civil_affairs`` logs in as Kafka user
``civil-affairs`` (Kubernetes names allow no ``_``); the services must treat it
as department ``civil_affairs``, and leave the bus's own principals alone.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from starlette.requests import Request

from exchange.http.auth import Gate, PasswordFiles
from exchange.http.errors import HttpError


def request(user: str, password: str) -> Request:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    scope = {"type": "http", "headers": [(b"authorization", f"Basic {token}".encode())]}
    return Request(scope)


@pytest.mark.parametrize(
    ("user", "principal"),
    [
        ("civil-affairs", "civil_affairs"),
        ("civil_affairs", "civil_affairs"),
        ("police", "police"),
        ("gov-router", "gov-router"),
        ("catalog-admin", "catalog-admin"),
        ("auditor", "auditor"),
    ],
)
async def test_the_caller_is_named_by_its_department_id(
    tmp_path: Path, user: str, principal: str
) -> None:
    (tmp_path / f"{user}.password").write_text("s3cret\n")
    gate = Gate(PasswordFiles(tmp_path))
    caller = await gate.principal(request(user, "s3cret"))
    assert caller.name == principal
    with pytest.raises(HttpError):
        await gate.principal(request(user, "wrong"))

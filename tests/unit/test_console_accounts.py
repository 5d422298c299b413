"""The console's people: the accounts file, argon2 passwords, lock-out, sessions and CSRF tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from exchange.console.accounts import AccountBook, AccountError, Role, hash_password
from exchange.console.lockout import Lockout
from exchange.console.sessions import SessionStore

DEPARTMENTS = {"police", "health"}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def digest() -> str:
    # the hash carries its cost: a cheap one keeps the checks here fast
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_person_logs_in_with_the_password_hashed_in_the_file(tmp_path: Path, digest: str) -> None:
    path = write(
        tmp_path,
        f"accounts:\n  - user: li\n    name: 李警官\n    department: police\n"
        f'    roles: [applicant, approver]\n    password_hash: "{digest}"\n',
    )
    book = AccountBook.load(path, DEPARTMENTS)
    person = book.check("li", PASSWORD)
    assert person is not None
    assert person.department == "police"
    assert person.roles == {Role.APPLICANT, Role.APPROVER}
    assert book.check("li", PASSWORD + "x") is None
    assert book.check("nobody", PASSWORD) is None
    assert hash_password(PASSWORD).startswith("$argon2id$")  # what the command line prints
    assert PASSWORD not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("  - user: a\n    department: police\n    roles: [pilot]\n", "unknown role 'pilot'"),
        ("  - user: a\n    department: customs\n    roles: [applicant]\n", "'customs'"),
        ("  - user: a\n    roles: [approver]\n", "needs a 'department'"),
        ("  - name: a\n    roles: [auditor]\n", "field 'user' is required"),
        ("  - user: a\n    roles: [auditor]\n    colour: red\n", "unknown field(s) colour"),
    ],
)
def test_a_wrong_entry_refuses_the_file_naming_entry_and_field(
    tmp_path: Path, digest: str, entry: str, problem: str
) -> None:
    good = f'  - user: ok\n    roles: [auditor]\n    password_hash: "{digest}"\n'
    path = write(tmp_path, f'accounts:\n{good}{entry}    password_hash: "{digest}"\n')
    with pytest.raises(AccountError) as caught:
        AccountBook.load(path, DEPARTMENTS)
    assert f"{path}: accounts[1]" in str(caught.value)
    assert problem in str(caught.value)


def test_a_password_in_clear_or_a_user_listed_twice_is_refused(tmp_path: Path, digest: str) -> None:
    clear = write(tmp_path, "accounts:\n  - user: a\n    roles: [auditor]\n    password_hash: x\n")
    with pytest.raises(AccountError, match="not an argon2 hash"):
        AccountBook.load(clear, DEPARTMENTS)
    entry = f'  - user: a\n    roles: [auditor]\n    password_hash: "{digest}"\n'
    twice = write(tmp_path, f"accounts:\n{entry}{entry}")
    with pytest.raises(AccountError, match=r"accounts\[1\]: user 'a' is listed twice"):
        AccountBook.load(twice, DEPARTMENTS)
    with pytest.raises(AccountError, match="at least 10 characters"):
        hash_password("short")


def test_repeated_failures_lock_the_account_for_a_while() -> None:
    now = [0.0]
    lock = Lockout(max_failures=3, lock_s=60, clock=lambda: now[0])
    assert not lock.failed("li")
    assert not lock.failed("li")
    assert lock.failed("li")  # the third locks
    assert lock.locked_for("li") == 60
    now[0] = 59.0
    assert lock.locked_for("li") == pytest.approx(1.0)
    now[0] = 61.0
    assert lock.locked_for("li") == 0
    assert lock.locked_for("wang") == 0
    lock.failed("li")
    lock.succeeded("li")  # a success clears the count
    assert not lock.failed("li")
    assert not lock.failed("li")


def test_sessions_expire_and_carry_their_own_csrf_token() -> None:
    now = [0.0]
    store = SessionStore(idle_s=10, max_s=25, clock=lambda: now[0])
    s = store.new()
    other = store.new()
    assert s.csrf != other.csrf
    assert s.csrf_ok(s.csrf)
    assert not s.csrf_ok(other.csrf)
    assert not s.csrf_ok(None)
    for t in (8.0, 16.0, 24.0):
        now[0] = t
        assert store.get(s.id) is s  # used within the idle time
    now[0] = 26.0
    assert store.get(s.id) is None  # past the absolute limit
    assert store.get(other.id) is None  # idle since 0
    assert store.cookie.startswith("__Host-")
    assert store.cookie_options()["secure"] is True
    assert store.cookie_options()["samesite"] == "strict"

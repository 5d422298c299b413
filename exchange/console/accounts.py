"""People of the console: accounts from a YAML file, passwords hashed with argon2id.

The file (``--accounts``) lists each person once::

    accounts:
      - user: police-zhang                 # the login name
        name: 张警官 Officer Zhang          # shown on pages and in nothing else
        department: police                  # a department of the catalog (auditors may omit it)
        roles: [applicant]                  # applicant, approver, auditor, catalog_admin
        password_hash: "$argon2id$v=19$..." # 'exchange console hash-password' prints one

Every problem is reported with the file, the entry and the field, and the
whole file is refused: no half-loaded list of people. The :class:`Person` a
login yields is all the rest of the console knows of someone, so a single
sign-on provider can later produce the same object without a password.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from exchange.errors import ExchangeError

_HASHER = PasswordHasher()
#: a password shorter than this is refused by ``hash-password``
MIN_PASSWORD = 10


class Role(StrEnum):
    """What a person may do in the console (the permission manager still decides each command)."""

    APPLICANT = "applicant"  # 申请人: applies for conditional fields, sees the department's view
    APPROVER = "approver"  # 审批人: answers applications to the department, revokes its grants
    AUDITOR = "auditor"  # 审计员: reads the access log, its chains and the monthly report
    CATALOG_ADMIN = "catalog_admin"  # 目录管理员: keeps the catalog, watches the router

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.APPLICANT: "申请人 applicant",
    Role.APPROVER: "审批人 approver",
    Role.AUDITOR: "审计员 auditor",
    Role.CATALOG_ADMIN: "目录管理员 catalog administrator",
}
#: roles that act for a department, so need one
DEPARTMENT_ROLES = frozenset({Role.APPLICANT, Role.APPROVER})


class AccountError(ExchangeError):
    """The accounts file cannot be used; the message names the file, entry and field."""


@dataclass(frozen=True)
class Person:
    """Someone logged in: who, for which department, in which roles."""

    user: str
    name: str
    department: str | None
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Account:
    person: Person
    password_hash: str


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for the accounts file."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def _field(where: str, entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise AccountError(f"{where}: field {name!r} is required (a non-empty string)")
    return value.strip()


def _roles(where: str, entry: dict[str, Any]) -> frozenset[Role]:
    given = entry.get("roles")
    if not isinstance(given, list) or not given:
        raise AccountError(f"{where}: field 'roles' must list at least one role")
    roles = set()
    for r in given:
        try:
            roles.add(Role(str(r)))
        except ValueError:
            known = ", ".join(x.value for x in Role)
            raise AccountError(f"{where}: unknown role {r!r} (known: {known})") from None
    return frozenset(roles)


def _account(where: str, entry: Any, departments: Collection[str]) -> Account:
    if not isinstance(entry, dict):
        raise AccountError(f"{where}: each account is a mapping (user, name, department, ...)")
    unknown = set(entry) - {"user", "name", "department", "roles", "password_hash"}
    if unknown:
        raise AccountError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    user = _field(where, entry, "user")
    roles = _roles(where, entry)
    department = entry.get("department")
    if department is not None and department not in departments:
        raise AccountError(
            f"{where}: department {department!r} is not a department of the catalog "
            f"(known: {', '.join(sorted(departments))})"
        )
    if department is None and roles & DEPARTMENT_ROLES:
        raise AccountError(f"{where}: an applicant or approver needs a 'department'")
    password_hash = _field(where, entry, "password_hash")
    if not password_hash.startswith("$argon2"):
        raise AccountError(
            f"{where}: 'password_hash' is not an argon2 hash "
            "(make one with 'exchange console hash-password')"
        )
    person = Person(user, str(entry.get("name") or user), department, roles)
    return Account(person, password_hash)


class AccountBook:
    """Every account, by login name."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self.accounts = {a.person.user: a for a in accounts}

    @classmethod
    def load(cls, path: Path, departments: Collection[str]) -> AccountBook:
        """Read the accounts file, checking each entry against the catalog's departments."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AccountError(f"{path}: cannot be read: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
            raise AccountError(f"{path}: expected a mapping with a list 'accounts'")
        accounts: list[Account] = []
        seen: set[str] = set()
        for i, entry in enumerate(data["accounts"]):
            where = f"{path}: accounts[{i}]"
            account = _account(where, entry, departments)
            if account.person.user in seen:
                raise AccountError(f"{where}: user {account.person.user!r} is listed twice")
            seen.add(account.person.user)
            accounts.append(account)
        return cls(accounts)

    def departments(self) -> set[str]:
        return {a.person.department for a in self.accounts.values() if a.person.department}

    def check(self, user: str, password: str) -> Person | None:
        """The person if ``password`` is theirs, else None (the same work for unknown users)."""
        account = self.accounts.get(user)
        digest = account.password_hash if account else _DUMMY_HASH
        try:
            _HASHER.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return account.person if account else None


# verified against when the user does not exist, so a wrong name costs what a wrong password does
_DUMMY_HASH = _HASHER.hash("no such user; never matches")

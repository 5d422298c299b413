"""Check characters of Chinese identifiers: resident ID numbers (GB 11643), unified
social credit codes (GB 32100), organisation codes (GB 11714) and bank card numbers (Luhn).
"""

from __future__ import annotations

import datetime as dt

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """Check character of a resident ID number (GB 11643, ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_id_number(s: str) -> bool:
    """18-character resident ID: 17 digits with a real birth date, then the check character.

    The check character ``X`` must be upper case, as the standard writes it.
    """
    if not isinstance(s, str) or len(s) != 18:
        return False
    body = s[:17]
    if not (body.isascii() and body.isdigit()):
        return False
    try:
        dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return id_check_digit(body) == s[17]


CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check(first17: str) -> str:
    """Check character of a unified social credit code (GB 32100-2015)."""
    if len(first17) != 17 or any(c not in CREDIT_CHARS for c in first17):
        raise ValueError(f"expected 17 characters of {CREDIT_CHARS!r}, got {first17!r}")
    total = sum(CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CHARS[(31 - total % 31) % 31]


def is_valid_credit_code(s: str) -> bool:
    """18-character unified social credit code with a correct check character."""
    if not isinstance(s, str) or len(s) != 18 or any(c not in CREDIT_CHARS for c in s):
        return False
    return credit_code_check(s[:17]) == s[17]


_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def org_code_check(first8: str) -> str:
    """Check character of a GB 11714 organisation code (positions 9-17 of a credit code)."""
    total = sum(int(c, 36) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)

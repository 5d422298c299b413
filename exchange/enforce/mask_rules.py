"""The names of the mask rules and a line on each: what ``--help`` texts show.

Kept apart from :mod:`exchange.enforce.masks` so a command's help costs no Avro import.
"""

from __future__ import annotations

KNOWN_RULES: dict[str, str] = {
    "keep": "keep:N:M keeps the first N and last M characters, the rest become '*'",
    "replace": "replace or replace:TEXT replaces the whole value with TEXT (default '***')",
    "hash": "keyed hash, the same for one consumer, different between consumers",
    "year": "keeps only the year of a date or timestamp",
    "surname": "keeps the first character of a Chinese name, the rest become '*'",
}
"""Rule name to a one-line description, for ``--help`` texts."""

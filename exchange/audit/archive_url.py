"""Opening the audit archive named by a URL: a SQLite file (the default) or PostgreSQL.

The archive's behaviour is :class:`~exchange.audit.archive.Archive`; its two
databases are in :mod:`exchange.audit.backends`. This module picks one from the
URL, connects and, unless told not to, creates the tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from exchange.audit.archive import Archive, ArchiveError
from exchange.audit.backends import PostgresArchive, SQLiteArchive


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///path`` URL or a plain path."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        raise ArchiveError(f"{url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    return url


def open_archive(url: str, *, setup: bool = True) -> Archive:
    """Open (and by default create) the archive at ``url``: a path, sqlite:///..., postgresql://..."""
    archive: Archive
    conn: Any
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise ArchiveError("the psycopg package is needed for PostgreSQL archives") from exc
        try:
            conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise ArchiveError(f"cannot open the PostgreSQL archive: {exc}") from exc
        archive = PostgresArchive(conn, url)
    else:
        path = sqlite_path(url)
        if path != ":memory:":
            if not setup and not Path(path).exists():
                raise ArchiveError(
                    f"no audit archive at {url}: fill one with 'exchange audit archive --to {url}'"
                )
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open the SQLite archive {path!r}: {exc}") from exc
        archive = SQLiteArchive(conn, url)
    if setup:
        archive.setup()
    else:
        try:
            archive.count()
        except Exception as exc:  # sqlite3.Error or psycopg.Error: no such table
            archive.close()
            raise ArchiveError(
                f"no audit archive at {url}: fill one with 'exchange audit archive --to {url}'"
            ) from exc
    return archive

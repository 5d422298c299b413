"""The database a connector's config names, opened with the driver of its dialect.

:mod:`connectors.sql` is the interface both databases share;
:mod:`connectors.postgres` and :mod:`connectors.mysql` implement it. This
module picks one from the URL's scheme (``postgresql://``, ``mysql://``,
``mariadb://``).
"""

from __future__ import annotations

from connectors.config import DatabaseTarget
from connectors.mysql import MySQLDatabase
from connectors.postgres import PostgresDatabase
from connectors.sql import Database


def open_database(target: DatabaseTarget, *, autocommit: bool) -> Database:
    """A connection (not opened yet) to the database ``target`` names."""
    if target.dialect == "postgresql":
        return PostgresDatabase(target, autocommit=autocommit)
    return MySQLDatabase(target, autocommit=autocommit)

"""Connector configuration: one YAML file, one or more connectors, checked with pydantic.

Example (see ``deploy/connectors/`` for complete ones)::

    connectors:
      - name: health-births
        type: db_source
        department: health
        resource: birth_medical_certificate
        database: {url: "postgresql://exchange@db.health.example:5432/births",
                   password_env: HEALTH_DB_PASSWORD}
        table: public.birth_certificates
        mapping: {certificate_no: cert_no, child_name: baby_name}   # field: column
        incremental: {column: updated_at, unique_key: [id]}

Errors name the file and line (from :mod:`exchange.catalog.yamlfile`). Secrets never
sit in the file: ``password_env`` names the environment variable holding the
password, read by the entry point (:func:`load`), never by a connector. It is
optional (trust or peer authentication needs none); named but unset, the
connector connects without a password and says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors import encodings
from connectors.errors import ConnectorConfigError, ConnectorConfigErrors
from exchange.catalog.yamlfile import Document, YamlProblem, read

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
QUALIFIED = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"
NAME = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
_TZ = re.compile(r"^([+-])(\d{2}):(\d{2})$")
DIALECTS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
QualifiedName = Annotated[str, Field(pattern=QUALIFIED, description="TABLE or SCHEMA.TABLE")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DatabaseConfig(_Strict):
    """Where the department's database is. The password comes from ``password_env``."""

    url: str = Field(
        description="postgresql://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB (mariadb:// too)"
    )
    password_env: str | None = Field(
        default=None,
        description="environment variable that holds the password; leave out for a database "
        "that needs none (trust or peer authentication)",
    )
    timezone: str = Field(
        default="+08:00",
        description="UTC offset of timestamps stored without a time zone (DATETIME, timestamp)",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _check(self) -> DatabaseConfig:
        parts = urlsplit(self.url)
        if parts.scheme not in DIALECTS:
            raise ValueError(
                f"url {self.url!r}: scheme must be postgresql://, mysql:// or mariadb://"
            )
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError(f"url {self.url!r}: write SCHEME://USER@HOST:PORT/DATABASE")
        if parts.password:
            raise ValueError("url: do not write the password in the file; use password_env")
        if not _TZ.match(self.timezone):
            raise ValueError(f"timezone {self.timezone!r}: write a UTC offset like +08:00")
        return self


class Incremental(_Strict):
    """Rows are read in order of (column, *unique_key), strictly after the checkpoint."""

    column: Identifier = Field(description="increases whenever a row is inserted or updated")
    unique_key: list[Identifier] | None = Field(
        default=None,
        description="columns that identify a row (primary key); break ties on 'column'. "
        "Default: the column mapped to the resource's key field",
    )


class SoftDelete(_Strict):
    column: Identifier = Field(description="boolean column; true marks a deleted row")


class CheckpointConfig(_Strict):
    """Where a source keeps its position: a table in its own database (default) or a file."""

    table: QualifiedName | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one(self) -> CheckpointConfig:
        if self.table and self.file:
            raise ValueError("give either checkpoint.table or checkpoint.file, not both")
        return self


class _ConnectorBase(_Strict):
    name: str = Field(pattern=NAME, description="unique in the file; names metrics and checkpoints")
    department: str
    resource: str


class DbSourceConfig(_ConnectorBase):
    type: Literal["db_source"]
    database: DatabaseConfig
    table: QualifiedName | None = None
    query: str | None = Field(default=None, description="a SELECT; read as a derived table")
    mapping: dict[str, Identifier] = Field(
        default_factory=dict,
        description="Avro field: column. A field not listed is read from the column of its name",
    )
    incremental: Incremental
    soft_delete: SoftDelete | None = None
    batch_size: int = Field(default=1000, ge=1, le=50_000)
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    checkpoint: CheckpointConfig = CheckpointConfig()

    @model_validator(mode="after")
    def _source(self) -> DbSourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.query is not None and not re.match(r"(?is)^\s*(select|with)\b", self.query):
            raise ValueError("query must be a SELECT (or WITH ... SELECT) statement")
        if self.query is not None and ";" in self.query.rstrip().rstrip(";"):
            raise ValueError("query must be one statement (no ';' inside)")
        return self


class DbSinkConfig(_ConnectorBase):
    type: Literal["db_sink"]
    database: DatabaseConfig
    table: QualifiedName
    create_schema: bool = Field(
        default=False,
        description="create the table's schema (PostgreSQL) or database (MySQL/MariaDB) "
        "if it does not exist; otherwise a missing one is an error naming the statement to run",
    )
    group: str | None = Field(
        default=None, description="Kafka consumer group; default gov-connector-<name>"
    )
    batch_size: int = Field(default=2000, ge=1, le=50_000)
    session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)


def _encoding(name: str | None) -> str | None:
    return None if name is None else encodings.canonical(name)


class FileImportConfig(_ConnectorBase):
    type: Literal["file_import"]
    path: Path
    format: Literal["jsonl", "csv", "xlsx"] | None = Field(
        default=None, description="default: from the file name (.jsonl, .ndjson, .csv, .xlsx)"
    )
    encoding: str | None = Field(
        default=None,
        description="text encoding of a CSV or JSON Lines file: utf-8 (default; a byte order "
        "mark is skipped), utf-8-sig, gb18030 (covers GBK and GB2312) or any Python codec",
    )
    sheet: str | int | None = Field(
        default=None,
        description=".xlsx only: the sheet's name, or its position counting from 1; default "
        "the first sheet",
    )
    header_row: int = Field(
        default=1, ge=1, le=1000, description=".xlsx only: the row that names the columns"
    )
    mapping: dict[str, str] = Field(
        default_factory=dict, description="CSV and .xlsx: Avro field: column header"
    )
    ignore_columns: list[str] = Field(
        default_factory=list, description="CSV and .xlsx columns to skip"
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    batch_size: int = Field(default=2000, ge=1, le=50_000)
    report: bool = Field(
        default=True,
        description="write <file>.import-report.json beside the file when a run ends",
    )

    _codec = field_validator("encoding")(_encoding)


class FileExportConfig(_ConnectorBase):
    type: Literal["file_export"]
    path: Path
    format: Literal["jsonl", "csv", "xlsx"] | None = None
    encoding: str | None = Field(
        default=None,
        description="text encoding of a CSV or JSON Lines file: utf-8 (default, no byte order "
        "mark), utf-8-sig (with one, for Excel), gb18030 (for Excel on Chinese Windows)",
    )
    sheet: str = Field(default="", max_length=31, description=".xlsx only: the sheet's name")
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    _codec = field_validator("encoding")(_encoding)


ConnectorConfig = Annotated[
    DbSourceConfig | DbSinkConfig | FileImportConfig | FileExportConfig,
    Field(discriminator="type"),
]


class ConnectorsFile(_Strict):
    connectors: list[ConnectorConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ConnectorsFile:
        seen: set[str] = set()
        for c in self.connectors:
            if c.name in seen:
                raise ValueError(f"connector name {c.name!r} is used twice")
            seen.add(c.name)
        return self


@dataclass(frozen=True)
class DatabaseTarget:
    """A database to connect to, resolved from :class:`DatabaseConfig` and the environment."""

    dialect: Literal["postgresql", "mysql"]
    host: str
    port: int
    user: str
    password: SecretStr | None
    database: str
    timezone: dt.tzinfo
    connect_timeout_s: float
    #: the variable ``password_env`` names, when it is not set (no password is sent)
    password_env_unset: str | None = None

    @property
    def where(self) -> str:
        name = "PostgreSQL" if self.dialect == "postgresql" else "MySQL/MariaDB"
        return f"{name} at {self.host}:{self.port}/{self.database}"

    @property
    def password_note(self) -> str | None:
        """What to tell the operator when ``password_env`` names a variable that is not set."""
        if self.password_env_unset is None:
            return None
        return (
            f"environment variable {self.password_env_unset} (database.password_env) is not "
            "set: connecting without a password"
        )

    def refused_hint(self) -> str:
        """Why the database may have refused a login, when it was sent no password."""
        if self.password is not None:
            return ""
        if self.password_env_unset is not None:
            return (
                f"; no password was sent because environment variable {self.password_env_unset} "
                "(database.password_env) is not set: set it"
            )
        return "; no password was sent: name the variable holding it in database.password_env"


def tz_of(offset: str) -> dt.tzinfo:
    m = _TZ.match(offset)
    if not m:
        raise ValueError(f"not a UTC offset: {offset!r}")
    minutes = int(m[2]) * 60 + int(m[3])
    return dt.timezone(dt.timedelta(minutes=-minutes if m[1] == "-" else minutes))


def resolve_database(cfg: DatabaseConfig, environ: Mapping[str, str]) -> DatabaseTarget:
    """Connection facts of ``cfg``; the password is read from ``environ[cfg.password_env]``.

    No ``password_env``, or one naming an unset variable: no password (the
    target's :attr:`~DatabaseTarget.password_note` says which variable is unset).
    """
    parts = urlsplit(cfg.url)
    dialect = DIALECTS[parts.scheme]
    password = None
    if cfg.password_env and cfg.password_env in environ:
        password = SecretStr(environ[cfg.password_env])
    return DatabaseTarget(
        dialect="postgresql" if dialect == "postgresql" else "mysql",
        host=parts.hostname or "",
        port=parts.port or (5432 if dialect == "postgresql" else 3306),
        user=unquote(parts.username or ("postgres" if dialect == "postgresql" else "root")),
        password=password,
        database=unquote(parts.path.strip("/")),
        timezone=tz_of(cfg.timezone),
        connect_timeout_s=cfg.connect_timeout_s,
        password_env_unset=cfg.password_env if cfg.password_env and password is None else None,
    )


_UNION_TAGS = ("db_source", "db_sink", "file_import", "file_export")


@dataclass(frozen=True)
class Spot:
    """Where one connector's settings are in its file, so later errors can name the line."""

    file: str | None = None
    doc: Document | None = None
    base: tuple[Any, ...] = ()

    def line(self, *keys: str | int) -> int | None:
        if self.doc is None:
            return None
        return self.doc.line_of(self.base + keys)

    def error(
        self,
        message: str,
        *keys: str | int,
        connector: str | None = None,
        column: str | None = None,
        field: str | None = None,
    ) -> ConnectorConfigError:
        return ConnectorConfigError(
            message,
            file=self.file,
            line=self.line(*keys) if keys else None,
            connector=connector,
            column=column,
            field=field,
        )


@dataclass(frozen=True)
class Loaded:
    """A checked connector file: the connectors, and where each one is written."""

    connectors: list[ConnectorConfig]
    spots: dict[str, Spot]


def load(path: Path) -> Loaded:
    """Read and check a connector file; every problem is reported with its line.

    The file holds ``connectors:`` with a list (or just the list). Relative
    paths in it (checkpoint files, imported and exported files) are resolved
    against the file's directory.
    """
    name = str(path)
    try:
        doc = read(path)
    except YamlProblem as exc:
        raise ConnectorConfigErrors(
            [ConnectorConfigError(exc.message, file=name, line=exc.line)]
        ) from None
    list_form = isinstance(doc.data, list)
    data = {"connectors": doc.data} if list_form else doc.data
    items = data.get("connectors") if isinstance(data, dict) else None
    try:
        parsed = ConnectorsFile.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p not in _UNION_TAGS)
            connector = None
            if len(loc) >= 2 and loc[0] == "connectors" and isinstance(loc[1], int):
                item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
                if isinstance(item, dict) and item.get("name"):
                    connector = str(item["name"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown setting {loc[-1]!r}"
            elif err["type"] == "missing":
                msg = f"setting {loc[-1]!r} is missing"
            errors.append(
                ConnectorConfigError(
                    f"{'.'.join(str(p) for p in loc) or 'document'}: {msg}",
                    file=name,
                    line=doc.line_of(loc[1:] if list_form else loc),
                    connector=connector,
                )
            )
        raise ConnectorConfigErrors(errors) from None
    spots = {
        c.name: Spot(name, doc, (i,) if list_form else ("connectors", i))
        for i, c in enumerate(parsed.connectors)
    }
    return Loaded([_resolve_paths(c, path.parent) for c in parsed.connectors], spots)


def _resolve_paths(c: Any, base: Path) -> Any:
    if isinstance(c, FileImportConfig | FileExportConfig) and not c.path.is_absolute():
        return c.model_copy(update={"path": base / c.path})
    if isinstance(c, DbSourceConfig) and c.checkpoint.file and not c.checkpoint.file.is_absolute():
        return c.model_copy(update={"checkpoint": CheckpointConfig(file=base / c.checkpoint.file)})
    return c

"""Which format a connector's file is in: given, or told by its name."""

from __future__ import annotations

from pathlib import Path

from connectors.errors import ConnectorConfigError

SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
}


def file_format(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        hint = (
            " (an old .xls workbook must be saved as .xlsx)"
            if path.suffix.lower() == ".xls"
            else ""
        )
        raise ConnectorConfigError(
            f"{path}: cannot tell the format from the name: set format: jsonl, csv or xlsx{hint}"
        )
    return fmt

"""Service identities (services.yaml): loaded with their keys; bad entries named with file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exchange.catalog import signing
from exchange.catalog.loader import load_catalog
from exchange.control.catalog_store import diff
from exchange.errors import CatalogErrors

SAMPLE = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(SAMPLE, target)
    return target


def _write(catalog_dir: Path, *entries: str) -> Path:
    path = catalog_dir / "services.yaml"
    path.write_text("services:\n" + "".join(entries), encoding="utf-8")
    return path


def test_services_are_loaded_and_their_keys_are_the_head_keys(catalog_dir: Path) -> None:
    _, key = signing.generate()
    _write(catalog_dir, f"  - id: gov-router-1\n    role: router\n    public_key: {key}\n")
    catalog = load_catalog(catalog_dir)
    assert catalog.head_keys() == {"gov-router-1": key}
    without = load_catalog(SAMPLE)
    assert without.head_keys() == {}  # the file is optional
    assert diff(without, catalog, 2).services_changed == ["gov-router-1"]


def test_a_bad_key_and_a_duplicate_id_are_named_with_file_and_line(catalog_dir: Path) -> None:
    _, key = signing.generate()
    _write(
        catalog_dir,
        f"  - id: gov-router-1\n    role: router\n    public_key: {key}\n",
        "  - id: gov-router-2\n    role: router\n    public_key: bm90IGEga2V5\n",
        f"  - id: gov-router-1\n    role: router\n    public_key: {key}\n",
        f"  - id: police\n    role: session\n    public_key: {key}\n",
    )
    with pytest.raises(CatalogErrors) as caught:
        load_catalog(catalog_dir)
    text = str(caught.value)
    assert "services.yaml" in text
    assert "public_key" in text
    assert "bytes; an Ed25519 key has 32" in text
    assert "service id 'gov-router-1' is used twice" in text
    assert "service id 'police' is also a department's id" in text
    assert "services.yaml:8" in text  # the entry with the bad key (its public_key line)
    assert "services.yaml:11" in text  # the second gov-router-1

"""Fixtures shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.catalog import Catalog
from exchange.catalog_loader import load_catalog

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CATALOG = ROOT / "schemas"


@pytest.fixture(scope="session")
def sample_catalog() -> Catalog:
    return load_catalog(SAMPLE_CATALOG)

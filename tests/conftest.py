from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Snowplow's own test data (Apache-2.0, see tests/reference/README.md), used as an oracle.
REFERENCE = ROOT / "tests" / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def fixture_line() -> str:
    return (REFERENCE / "enriched-tsv" / "fixture.tsv").read_text().rstrip("\n")

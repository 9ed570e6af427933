"""The failed-event types: a column users query, so its values never change unnoticed."""

from __future__ import annotations

import re
from pathlib import Path

from loader import failed
from loader.failed import ErrorType

RELEASED = {
    "invalid_payload", "invalid_json", "invalid_field", "missing_field", "wrong_field_count",
    "invalid_encoding", "enrich_error", "warehouse_rejected", "unprocessable",
    "schema_not_allowed", "incomplete_line", "invalid_csv",
}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


def test_released_values_are_kept():
    assert {e.value for e in ErrorType} >= RELEASED
    assert all(e == e.value and str(e) == e.value for e in ErrorType)


def test_every_type_is_documented():
    page = (ROOT / "docs" / "failed-events.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", page, re.MULTILINE)) - {
        "failed_at", "source", "error_type", "message", "raw",
    }  # fmt: skip
    assert documented == {e.value for e in ErrorType}
    assert {e.value for e in ErrorType} <= set(re.findall(r"``([a-z_]+)``", failed.__doc__ or ""))


def test_no_type_is_spelled_by_hand():
    """Every failed event names its type through the enum."""
    values = "|".join(e.value for e in ErrorType)
    spelled = re.compile(rf"""["']({values})["']""")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "loader").rglob("*.py")
        if path.name != "failed.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line)
    ]
    assert offenders == []

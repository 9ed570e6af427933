"""The check every fast-path property test makes: a batch built by a column-by-column path
holds what the per-item parser's batch holds (rows, column order, failed events)."""

from __future__ import annotations

from datetime import datetime

from loader.batch import Batch

LOADED_AT = datetime(2026, 1, 1)


def assert_same_batches(fast: Batch, slow: Batch, clock_columns: tuple[str, ...] = ()) -> None:
    """``clock_columns`` hold the time of parsing (etl_tstamp from enrichment), which the two
    paths take at different moments: they must be filled, and are not compared."""
    expected = slow.to_arrow(LOADED_AT)
    actual = fast.to_arrow(LOADED_AT) if fast.tables else Batch().to_arrow(LOADED_AT)
    assert actual.schema == expected.schema  # columns in the same order, not only the values
    for name in clock_columns:
        assert actual.column(name).null_count == 0
        at = actual.schema.get_field_index(name)
        actual, expected = actual.remove_column(at), expected.remove_column(at)
    assert actual.to_pylist() == expected.to_pylist()
    assert actual.equals(expected)
    assert [(f.raw, f.error_type, f.message, f.source) for f in fast.failed] == [
        (f.raw, f.error_type, f.message, f.source) for f in slow.failed
    ]

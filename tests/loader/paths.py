"""Which path carried the rows: the loader counts rows typed column by column (fast) and one by
one (slow) in ``METRICS`` (``persona_rows_total{path=...}``). A test of a fast-path claim
reads the counts, so a fast path that silently falls back fails it."""

from __future__ import annotations

from types import TracebackType

from loader.metrics import METRICS


class RowPaths:
    """``with RowPaths() as paths: ...`` then ``paths.fast`` and ``paths.slow``: the rows each
    path carried inside the block (this process only)."""

    fast = slow = 0

    def __enter__(self) -> RowPaths:
        self._before = (METRICS.rows_fast, METRICS.rows_slow)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.fast = METRICS.rows_fast - self._before[0]
        self.slow = METRICS.rows_slow - self._before[1]

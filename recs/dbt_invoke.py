"""Run the project's dbt in-process against a DuckDB file: one place for the environment
dance (dbt reads PERSONA_* through env_var) and for turning a failed run into a message."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then put back what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def failures(result: Any) -> str:
    """What went wrong in a dbtRunner result: the exception, else each failed node."""
    if result.exception:
        return str(result.exception)
    return str([
        f"{r.node.name}: {r.status} {r.message}"
        for r in (result.result or [])
        if getattr(r, "status", None) not in ("pass", "success", "skipped")
    ])  # fmt: skip

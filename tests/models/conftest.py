"""Run the real dbt project, in-process, against a scratch DuckDB file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

from tests.conftest import ROOT

DbtRun = Callable[..., None]


@pytest.fixture
def dbt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DbtRun:
    """``dbt("build", ...)`` against ``tmp_path/warehouse.duckdb``; raises on failure."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(ROOT / "profiles.example.yml", profiles / "profiles.yml")
    monkeypatch.setenv("PERSONA_DUCKDB", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("PERSONA_TARGET", "duckdb")
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))

    def run(*args: str) -> None:
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(ROOT),
                "--profiles-dir",
                str(profiles),
                "--target-path",
                str(tmp_path / "target"),
                "--quiet",
            ]
        )
        if not result.success:
            failures = [
                f"{r.node.name}: {r.status} {r.message}"
                for r in (result.result or [])
                if getattr(r, "status", None) not in ("pass", "success", "skipped")
            ]
            raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or failures}")

    return run

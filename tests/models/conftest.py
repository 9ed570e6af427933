"""Run the real dbt project, in-process, against a scratch DuckDB file."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

from tests.conftest import ROOT

DbtRun = Callable[..., None]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dbt") / "warehouse.duckdb"


@pytest.fixture(scope="module")
def dbt(warehouse: Path) -> Iterator[DbtRun]:
    """``dbt("build", ...)`` against the module's scratch warehouse; raises on failure."""
    work = warehouse.parent
    (work / "profiles").mkdir(exist_ok=True)
    shutil.copy(ROOT / "profiles.example.yml", work / "profiles" / "profiles.yml")

    def run(*args: str) -> None:
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir", str(ROOT),
                "--profiles-dir", str(work / "profiles"),
                "--target-path", str(work / "target"),
                "--log-path", str(work / "logs"),
                "--quiet",
            ]
        )  # fmt: skip
        if not result.success:
            failures = [
                f"{r.node.name}: {r.status} {r.message}"
                for r in (result.result or [])
                if getattr(r, "status", None) not in ("pass", "success", "skipped")
            ]
            raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or failures}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PERSONA_DUCKDB", str(warehouse))
        mp.setenv("PERSONA_TARGET", "duckdb")
        yield run

"""`dbt build` on a DuckDB file another process holds: a short answer naming that process and
what to do (the profile's plugin, loader/dbt_plugin.py), not dbt-duckdb's three tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from tests.conftest import ROOT

# dbt's own command line, run by this interpreter from the project (so this checkout's
# `loader` is the one the profile's plugin imports)
DBT = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]


def dbt_build(work: Path, warehouse: Path) -> subprocess.CompletedProcess[str]:
    """`dbt build` as a user runs it, with profiles.example.yml as their profiles.yml."""
    (work / "profiles").mkdir(exist_ok=True)
    shutil.copy(ROOT / "profiles.example.yml", work / "profiles" / "profiles.yml")
    env = os.environ | {"PERSONA_DUCKDB": str(warehouse), "PERSONA_TARGET": "duckdb"}
    return subprocess.run(
        [*DBT, "build", "--profiles-dir", str(work / "profiles"),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_dbt_build_on_a_held_file_names_the_holder_in_one_line(
    tmp_path: Path, duckdb_holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    holder = duckdb_holder(warehouse)
    result = dbt_build(tmp_path, warehouse)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) <= 20, output  # dbt's banner, then the error
    [line] = [line for line in output.splitlines() if "cannot open" in line]
    assert f"{warehouse}: PID {holder.pid} (" in line
    assert "one writing process per file. Stop that process" in line
    if Path(f"/proc/{holder.pid}/cmdline").exists():
        assert "hold-the-warehouse" in line  # the holder's command line says what it is

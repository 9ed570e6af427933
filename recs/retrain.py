"""Run the project's retrain (``dbt build --selector retrain``, the same models) in-process on a
DuckDB file, optionally reading a plain interaction log instead of the event models."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import duckdb
import pyarrow as pa

from recs.dbt_invoke import environment, failures

if TYPE_CHECKING:
    from dbt.artifacts.schemas.run import RunExecutionResult

ROOT = Path(__file__).resolve().parents[1]
LOG_TABLE = "recs_input.interaction_log"


class RetrainError(RuntimeError):
    """dbt did not build the rule sets; the message carries dbt's reasons."""


def load_log(con: duckdb.DuckDBPyConnection, rows: Iterable[tuple[Any, ...]] | str) -> int:
    """Replace the interaction log with ``rows`` (user_id, item_id, interacted_at, weight[,
    event_type]; no type reads as ``interaction``) or with the result of a query text selecting
    those columns."""
    con.execute("create schema if not exists recs_input")
    con.execute(f"drop table if exists {LOG_TABLE}")
    con.execute(
        f"create table {LOG_TABLE} (user_id varchar, item_id varchar, "
        "interacted_at timestamp, weight double, event_type varchar)"
    )
    if isinstance(rows, str):
        con.execute(f"insert into {LOG_TABLE} (user_id, item_id, interacted_at, weight) {rows}")
    else:
        rows = list(rows)
        columns = [list(c) for c in zip(*(r[:4] for r in rows), strict=True)] or [[], [], [], []]
        types = [r[4] if len(r) > 4 else None for r in rows]
        batch = pa.table(
            {
                "user_id": pa.array(columns[0], pa.string()),
                "item_id": pa.array(columns[1], pa.string()),
                "interacted_at": pa.array(columns[2], pa.timestamp("us")),
                "weight": pa.array(columns[3], pa.float64()),
                "event_type": pa.array(types, pa.string()),
            }
        )
        con.register("log_batch", batch)
        con.execute(f"insert into {LOG_TABLE} select * from log_batch")
        con.unregister("log_batch")
    loaded: int = con.execute(f"select count(*) from {LOG_TABLE}").fetchall()[0][0]
    return loaded


class Retrain(NamedTuple):
    """dbt's wall time, and each model's execution time, in seconds."""

    seconds: float
    models: dict[str, float]


def run(
    warehouse: Path,
    dbt_vars: dict[str, Any] | None = None,
    *,
    from_log: bool = True,
    select: tuple[str, ...] = ("--selector", "retrain"),
) -> Retrain:
    """Build the rule sets into ``warehouse``; returns the wall and per-model times."""
    from dbt.cli.main import dbtRunner

    dbt_vars = dict(dbt_vars or {})
    if from_log:
        dbt_vars.setdefault("recs_interactions_from", "interaction_log")
    with tempfile.TemporaryDirectory(prefix="persona-retrain-") as tmp:
        shutil.copy(ROOT / "profiles.example.yml", Path(tmp) / "profiles.yml")
        env = {"PERSONA_DUCKDB": str(warehouse), "PERSONA_TARGET": "duckdb"}
        started = time.perf_counter()
        with environment(env):
            result = dbtRunner().invoke(
                ["build", *select, "--exclude-resource-type", "unit_test",
                 "--vars", json.dumps(dbt_vars), "--project-dir", str(ROOT),
                 "--profiles-dir", tmp, "--target-path", str(Path(tmp) / "target"),
                 "--log-path", str(Path(tmp) / "logs"), "--quiet"]
            )  # fmt: skip
        seconds = time.perf_counter() - started
    if not result.success:
        raise RetrainError(f"dbt retrain failed: {failures(result)}")
    built = cast("RunExecutionResult | None", result.result)  # dbt types it as any artifact
    models = {
        r.node.name: r.execution_time
        for r in (built or [])
        if getattr(r.node, "resource_type", None) == "model"
    }
    return Retrain(seconds, models)


def latest_recommendations(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Each user's recommendations of the served version, in rank order."""
    rows = con.execute(
        "select user_id, list(product_id order by recommendation_rank) "
        "from derived.current_user_recommendations group by user_id"
    ).fetchall()
    return {user: items for user, items in rows}

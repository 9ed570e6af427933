"""Incremental `dbt run` against a full refresh of the same data, at two history sizes.

The synthetic stream (ordered by arrival) is cut into: history up to the first size, a slice of
new events, the rest of the history up to the second size, another slice of new events. After
each slice of new events, `dbt run` (incremental) is timed, then `dbt run --full-refresh` of
the same data into a second schema. The claim under test: an incremental run costs a small
fraction of a full refresh, and that cost follows the new data, not the history.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loader import pipeline
from loader.enriched import Event
from loader.failed import FailedEvent
from loader.sinks.duckdb import DuckDBSink
from loader.sources.synthetic import SyntheticConfig, SyntheticSource

ROOT = Path(__file__).resolve().parents[1]
EVENTS_PER_USER_DAY = 3.5  # what the synthetic shop produces, measured


@dataclass
class DbtTiming:
    wall_s: float
    models_s: float  # sum of the models' own execution time, without dbt's start-up


def dbt_run(
    warehouse: Path, work: Path, *args: str, schema: str = "derived", command: str = "run"
) -> DbtTiming:
    """The refresh (`--selector realtime`: the rule sets are retrained on their own cadence)."""
    env = os.environ | {"PERSONA_DUCKDB": str(warehouse), "PERSONA_SCHEMA": schema}
    target = work / f"target-{schema}"
    started = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "dbt"), command, "--quiet", "--selector", "realtime", *args,
         "--project-dir", str(ROOT), "--profiles-dir", str(work),
         "--target-path", str(target), "--log-path", str(work / "logs")],
        env=env, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    results = json.loads((target / "run_results.json").read_text())["results"]
    return DbtTiming(wall, sum(r["execution_time"] for r in results))


def load(warehouse: Path, events: Iterator[Event | FailedEvent], n: int) -> int:
    sink = DuckDBSink(warehouse)
    summary = pipeline.run(itertools.islice(events, n), sink, batch_rows=50_000)
    sink.close()
    return summary.good


def run(out: Path, sizes: tuple[int, int], new: int) -> dict:
    work = out / "incremental"
    work.mkdir(parents=True, exist_ok=True)
    (work / "profiles.yml").write_text((ROOT / "profiles.example.yml").read_text())
    warehouse = work / "warehouse.duckdb"
    for stale in work.glob("warehouse.duckdb*"):
        stale.unlink()
    total = sizes[1] + new
    users = max(1, round(total / (EVENTS_PER_USER_DAY * 30)))
    events = iter(SyntheticSource(SyntheticConfig(users=users, days=30, seed=11)))
    loaded, points = 0, []
    for schema in ("derived", "derived_full"):  # the reference data the models read
        dbt_run(warehouse, work, schema=schema, command="seed")
    for size in sizes:
        loaded += load(warehouse, events, size - loaded)
        dbt_run(warehouse, work)  # catch up on the history (the first time: the initial build)
        loaded += load(warehouse, events, new)
        incremental = dbt_run(warehouse, work)
        full = dbt_run(warehouse, work, "--full-refresh", schema="derived_full")
        points.append({
            "history_events": size, "new_events": new,
            "incremental_wall_s": incremental.wall_s, "incremental_models_s": incremental.models_s,
            "full_refresh_wall_s": full.wall_s, "full_refresh_models_s": full.models_s,
            "models_ratio": incremental.models_s / full.models_s,
            "wall_ratio": incremental.wall_s / full.wall_s,
        })  # fmt: skip
    return {"users": users, "points": points}

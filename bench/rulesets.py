"""Recommendation rule-set build time (`dbt build --selector retrain`, the real models) on an
interaction log of N rows, next to a floor measured in the same run: one DuckDB pass that
aggregates the same log per user and item (what any recommender must read at least once).

The log is generated in DuckDB: users = N / 40 (40 interactions each on average, skewed),
10,000 items with a power-law popularity, 90 days of timestamps, weights 1/3/5.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from recs import retrain

LOG_QUERY = """
select
    'u' || cast(floor(pow(random(), 1.5) * {users}) as bigint) as user_id,
    'i' || cast(floor(pow(random(), 3) * 10000) as bigint) as item_id,
    timestamp '2026-01-01' + to_seconds(cast(random() * 90 * 86400 as bigint)) as interacted_at,
    case when random() < 0.9 then 1.0 when random() < 0.7 then 3.0 else 5.0 end as weight
from range({n})
"""


def build(out: Path, n: int) -> dict:
    path = out / f"rulesets-{n}.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    con.execute("select setseed(0.42)")
    rows = retrain.load_log(con, LOG_QUERY.format(n=n, users=max(n // 40, 1)))
    started = time.perf_counter()
    con.execute(
        "create or replace table floor_check as select user_id, item_id, sum(weight) "
        "from recs_input.interaction_log group by all"
    )
    floor_s = time.perf_counter() - started
    con.close()
    trained = retrain.run(path, {"recs_training_days": None})
    con = duckdb.connect(str(path))
    counts = con.execute(
        "select interactions_rows, user_count, item_count, item_similarity_rows, "
        "user_recommendations_rows from derived.rule_set_versions"
    ).fetchone()
    con.close()
    return {
        "interactions": rows,
        "user_items": counts[0],
        "users": counts[1],
        "items": counts[2],
        "item_similarity_rows": counts[3],
        "user_recommendations_rows": counts[4],
        "dbt_wall_s": trained.seconds,
        "models_s": sum(trained.models.values()),
        "per_model_s": trained.models,
        "floor_group_by_s": floor_s,
        "warehouse": str(path),
    }


def run(out: Path, sizes: tuple[int, ...]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return {"points": [build(out, n) for n in sizes]}

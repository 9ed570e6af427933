"""Recommendation rule-set build time (`dbt build --selector retrain`, the real models) on an
interaction log of N rows, next to a floor measured in the same run: one DuckDB pass that
aggregates the same log per user and item (what any recommender must read at least once).

The log is generated in DuckDB: users = N / 40 (40 interactions each on average, skewed),
10,000 items with a power-law popularity, 90 days of timestamps, weights 1/3/5.

``--changed F`` (reuse) then gives a fraction F of the users 5 new events each, within a day
after the log's end, and retrains twice in the same run: copying the lists of users whose
inputs did not change (user_rule_inputs, the default), and scoring every user
(`recs_reuse_unchanged: false`); the same with the new events on those users' favourite
items (among their 20 strongest: repeat visits); and with no new event at all.
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


NEW_EVENTS_QUERY = """
select
    user_id,
    'i' || cast(floor(pow(random(), 3) * 10000) as bigint) as item_id,
    (select max(interacted_at) from recs_input.interaction_log)
        + to_seconds(cast(random() * 86400 as bigint)) as interacted_at,
    case when random() < 0.9 then 1.0 when random() < 0.7 then 3.0 else 5.0 end as weight
from (
    select user_id from (select distinct user_id from recs_input.interaction_log)
    using sample {percent} percent (bernoulli, 7)
) as changed_users
cross join range(5)
"""


# users coming back to their favourite items (among their 20 strongest): no item gains a user
# and no user's first recs_max_items_per_user items change, so no neighbour list changes
REPEAT_EVENTS_QUERY = """
select
    user_id,
    product_id as item_id,
    (select max(interacted_at) from recs_input.interaction_log)
        + to_seconds(cast(random() * 86400 as bigint)) as interacted_at,
    case when random() < 0.9 then 1.0 when random() < 0.7 then 3.0 else 5.0 end as weight
from (
    select *, random() as draw from derived.interactions
    where affinity_rank <= 20 and user_id in (
        select user_id from (select distinct user_id from derived.interactions)
        using sample {percent} percent (bernoulli, 7)
    )
)
qualify row_number() over (partition by user_id order by draw) <= 5
"""


def _retrain(path: Path, dbt_vars: dict) -> dict:
    trained = retrain.run(path, {"recs_training_days": None, **dbt_vars})
    con = duckdb.connect(str(path))
    users, copied = con.execute(
        "select count(*), count(reused_from) from derived.user_rule_inputs "
        "where rule_set_version = (select max(rule_set_version) from derived.user_rule_inputs)"
    ).fetchone()
    con.close()
    return {"models_s": sum(trained.models.values()), "per_model_s": trained.models,
            "users": users, "users_copied": copied}  # fmt: skip


def _pair(path: Path, rounds: int, new_events: float, query: str = NEW_EVENTS_QUERY) -> dict:
    """The next retrain with reuse, then the same one scoring everyone, ``rounds`` times (new
    events, ``query``, for a fraction ``new_events`` of the users before each round); the
    faster of each."""
    reuse, full = [], []
    for round_ in range(rounds):
        if new_events:
            con = duckdb.connect(str(path))
            con.execute(f"select setseed(0.{17 + round_})")
            con.execute(
                "insert into recs_input.interaction_log (user_id, item_id, interacted_at, weight) "
                + query.format(percent=new_events * 100)
            )
            con.close()
        reuse.append(_retrain(path, {}))
        full.append(_retrain(path, {"recs_reuse_unchanged": False}))
    fastest = {"reuse": min(reuse, key=lambda r: r["models_s"]),
               "full": min(full, key=lambda r: r["models_s"])}  # fmt: skip
    return {**fastest, "ratio": fastest["full"]["models_s"] / fastest["reuse"]["models_s"]}


def reuse(point: dict, changed: float, rounds: int = 2) -> dict:
    """After ``point``'s build, the next retrain with reuse and scoring everyone, same run: with
    new events for a fraction ``changed`` of the users, and with nothing new."""
    path = Path(point["warehouse"])
    return {"changed": changed, "after_changes": _pair(path, rounds, changed),
            "repeats": _pair(path, rounds, changed, REPEAT_EVENTS_QUERY),
            "nothing_new": _pair(path, rounds, 0.0)}  # fmt: skip


def run(out: Path, sizes: tuple[int, ...], changed: float | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    points = [build(out, n) for n in sizes]
    if changed is not None:
        for point in points:
            point["reuse"] = reuse(point, changed)
    return {"points": points}

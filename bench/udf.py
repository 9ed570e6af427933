"""Scoring latency of persona_recommend per call through SQL on DuckDB (one call = one
`execute` with the user's affinities gathered from derived.interactions and a session of 3
items), next to reading the user's precomputed top K from current_user_recommendations in the
same run: what a live context costs over a lookup."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import duckdb

from udfs.duckdb import register

SCORE = (
    "select persona_recommend(?, list(product_id), list(affinity), 10) "
    "from derived.interactions where user_id = ?"
)
LOOKUP = (
    "select list(product_id order by recommendation_rank) "
    "from derived.current_user_recommendations where user_id = ?"
)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def run(warehouse: Path, calls: int, seed: int = 0) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    rules = register(con)
    users = [r[0] for r in con.execute("select distinct user_id from derived.interactions")
             .fetchall()]  # fmt: skip
    items = sorted(rules.neighbours)
    rng = random.Random(seed)
    score, lookup = [], []
    for _ in range(calls):
        user, session = rng.choice(users), rng.sample(items, 3)
        started = time.perf_counter()
        con.execute(SCORE, [session, user]).fetchone()
        score.append(time.perf_counter() - started)
        started = time.perf_counter()
        con.execute(LOOKUP, [user]).fetchone()
        lookup.append(time.perf_counter() - started)
    return {
        "calls": calls,
        "rule_set_items": len(items),
        "rule_set_pairs": sum(len(v) for v in rules.neighbours.values()),
        "score": _percentiles(score),
        "lookup": _percentiles(lookup),
    }

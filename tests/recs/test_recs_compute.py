"""The similar items of ``user_recommendations`` scored in numpy (``user_similar_items``, the
DuckDB default) give the same rule set as the same rules in SQL (``recs_compute: sql``, what
Snowflake runs): same items, ranks, reasons, details and scores, on a generated log with heavy
users, repeat purchases and views (which go) mixed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from recs import retrain

VARS = {
    "recs_training_days": None,
    "recs_recommend_again": ["transaction"],
    "recs_buy_again_weight": 0.3,  # similar items and buy-again interleave
    "recs_max_items_per_user": 12,  # heavy users are cut
    "recs_neighbours": 8,
    "recs_top_k": 5,
}


def log(seed: int = 7) -> list[tuple]:
    """300 users, 120 items with skewed popularity; a few heavy users; ~1/4 transactions,
    some bought again; float weights so that no two scores tie."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    rows = []
    for u in range(300):
        for _ in range(rng.choice([1, 2, 3, 5, 8, 30])):
            item = f"i{int(rng.random() ** 2 * 120):03d}"
            kind = "transaction" if rng.random() < 0.25 else "product_view"
            for _ in range(rng.choice([1, 1, 2, 3]) if kind == "transaction" else 1):
                at = start + timedelta(seconds=rng.randrange(60 * 86400))
                rows.append((f"u{u:03d}", item, at, 1 + rng.random(), kind))
    return rows


def rules(path: Path, compute: str) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        retrain.load_log(con, log())
    retrain.run(path, {**VARS, "recs_compute": compute})
    with duckdb.connect(str(path)) as con:
        return con.execute(
            "select user_id, recommendation_rank, product_id, recommended_by, reason, "
            "reason_detail, score from derived.current_user_recommendations order by 1, 2"
        ).fetchall()


@pytest.mark.slow
def test_numpy_and_sql_scoring_give_the_same_rule_set(tmp_path: Path) -> None:
    in_numpy = rules(tmp_path / "numpy.duckdb", "python")
    in_sql = rules(tmp_path / "sql.duckdb", "sql")
    assert len(in_numpy) == len(in_sql) > 1000
    reasons = {r[4] for r in in_numpy}
    assert reasons == {"similar_to", "buy_again", "popular_in_segment"}
    for got, want in zip(in_numpy, in_sql, strict=True):
        assert got[:6] == want[:6], (got, want)
        assert got[6] == pytest.approx(want[6], rel=1e-9)

"""``recs_similarity: ease``: EASE's item weights (``item_weights_ease``, learned in closed form)
served as ``item_similarity``, on a catalog with a known answer: items bought in pairs."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from recs import retrain


def test_ease_finds_each_items_partner_and_keeps_the_neighbour_cap(tmp_path: Path) -> None:
    """40 items in 20 pairs; each user takes both items of one or two pairs and, now and then,
    one popular item besides: an item's strongest EASE weight is its partner, and each item
    keeps at most ``recs_neighbours`` neighbours."""
    rng = random.Random(3)
    start = datetime(2026, 1, 1)
    rows = []
    for u in range(400):
        for pair in rng.sample(range(20), rng.choice([1, 2])):
            for item in (2 * pair, 2 * pair + 1):
                rows.append((f"u{u:03d}", f"i{item:02d}",
                             start + timedelta(hours=rng.randrange(1000)), 1.0))  # fmt: skip
        if rng.random() < 0.3:
            rows.append((f"u{u:03d}", "i00", start, 1.0))
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        retrain.load_log(con, rows)
    neighbours = 3
    retrain.run(path, {"recs_similarity": "ease", "recs_training_days": None,
                       "recs_half_life_days": 0, "recs_neighbours": neighbours})  # fmt: skip
    with duckdb.connect(str(path)) as con:
        top = dict(con.execute(
            "select product_id, similar_product_id from derived.current_item_similarity "
            "where neighbour_rank = 1"
        ).fetchall())  # fmt: skip
        most = con.execute(
            "select max(n) from (select count(*) as n from derived.current_item_similarity "
            "group by product_id)"
        ).fetchone()[0]
    partner = {f"i{i:02d}": f"i{i ^ 1:02d}" for i in range(40)}
    assert top == partner
    assert most == neighbours

"""``/v1/decide`` scores buy-again live: the batch sync puts what each user bought (from
``derived.interactions``) and the served repurchase rates and intervals into the online store,
and a repeat buyer's due item comes back first with reason ``buy_again``, through the real HTTP
API of the live process, on the demo warehouse retrained with ``recs_recommend_again``."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.models.conftest import Dbt
from tests.serving.conftest import copy_warehouse
from tests.serving.test_decide import decide


def test_a_repeat_buyer_gets_the_due_item_back_live(live, demo: Path, tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    built = copy_warehouse(demo, tmp_path / "build" / "warehouse.duckdb")
    # views may come back: the demo's shoppers view the same products again and again, which is
    # the repeat behaviour buy-again scores (transactions repeat too rarely in 7 days)
    again = {"recs_recommend_again": ["product_view"], "as_of": "latest_event"}
    Dbt(built)("build", "--selector", "retrain", "--exclude-resource-type", "test",
               "unit_test", vars=again)  # fmt: skip
    # dbt (in this process) keeps the file open: the live process gets its own copy
    warehouse = copy_warehouse(built, tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        # the buy-again item the table itself ranks first for a user, who also has similar
        # items (so the live list has both kinds to order)
        user, item = con.execute(
            "select r.user_id, r.product_id from derived.current_user_recommendations r "
            "where r.reason = 'buy_again' and r.recommendation_rank = 1 and exists ("
            "  select 1 from derived.current_user_recommendations s "
            "  where s.user_id = r.user_id and s.reason = 'similar_to') "
            "order by r.user_id limit 1"
        ).fetchone()
        buyers = con.execute("select count(*) from derived.current_item_repurchase").fetchone()[0]
    assert buyers > 0
    server = live(warehouse=warehouse)

    got = decide(server, user_id=user, k=10)["recommendations"]
    assert got["strategy"] == "live"
    first = got["items"][0]
    assert (first["product_id"], first["reason"]) == (item, "buy_again"), got["items"]
    assert first["score"] == 1.0  # relative to the user's best buy-again item: this one
    reasons = {i["reason"] for i in got["items"]}
    assert "similar_to" in reasons  # discovery still fills the list after what is due
    # buy-again items first (the default blend weight 1), each bought by this user
    kinds = [i["reason"] == "buy_again" for i in got["items"]]
    assert kinds == sorted(kinds, reverse=True)

    # a user who bought nothing gets no buy-again item
    other = decide(server, user_id="nobody", items=[item], k=10)["recommendations"]
    assert all(i["reason"] != "buy_again" for i in other["items"])


def test_a_warehouse_built_before_buy_again_still_serves(tmp_path: Path) -> None:
    """``interactions`` without the repeatable columns (a warehouse an older version built):
    the sync serves the affinities and leaves purchases out until dbt's next run adds them,
    rather than failing the live process's start."""
    from serving.batch import BatchSync, affinity_key, purchase_key
    from serving.stores import open_store

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("create schema derived")
    con.execute("create table derived.interactions as select 'u1' as user_id, 'sku-1' as "
                "product_id, 2.5 as affinity, 1 as affinity_rank")  # fmt: skip
    store = open_store("memory")
    BatchSync(store).sync(con.cursor())
    assert store.get(affinity_key("u1")) is not None
    assert store.get(purchase_key("u1")) is None
    con.execute("alter table derived.interactions add column repeatable_events integer default 1")
    con.execute("alter table derived.interactions add column first_repeatable_at timestamp "
                "default timestamp '2026-11-01'")  # fmt: skip
    con.execute("alter table derived.interactions add column last_repeatable_at timestamp "
                "default timestamp '2026-11-20'")  # fmt: skip
    BatchSync(store).sync(con.cursor())
    assert store.get(purchase_key("u1")) is not None

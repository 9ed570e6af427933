"""The batch sync after a refresh (serving/batch.py) finds what changed by hashes the warehouse
computes, and a fingerprint of the served rule set: a second sync must write exactly the keys
whose rows changed (and delete the keys whose rows are gone), leaving the store as a first
sync of the changed warehouse fills it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson

from serving.batch import (
    BATCH_META_KEY,
    RULES_KEY,
    BatchSync,
    affinity_key,
    batch_key,
    device_key,
)
from serving.stores.memory import MemoryStore
from tests.serving.conftest import copy_warehouse


def contents(store: MemoryStore) -> dict[str, Any]:
    """Every key but the sync's clock, decoded, without the payloads' as_of."""
    out = {}
    for key, raw in store._data.items():
        if key != BATCH_META_KEY:
            value = orjson.loads(raw)
            if isinstance(value, dict):
                value.pop("as_of", None)
            out[key] = value
    return out


def test_a_second_sync_writes_the_changed_rows_alone(demo: Path, tmp_path: Path) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(warehouse))
    store = MemoryStore()
    sync = BatchSync(store)
    first = sync.sync(con.cursor())
    assert {"profiles", "segments", "recommendations", "devices", "affinities", "rules"} <= set(
        first.tables
    ), first.tables
    unchanged = sync.sync(con.cursor())
    assert unchanged.keys == 0 and unchanged.deleted == 0, unchanged

    # one change per group, each in a column a digest must cover (the last of its payload)
    one = "select user_id from derived.{} order by user_id limit 1 offset {}"
    profiled = con.execute(one.format("profiles", 3)).fetchone()[0]
    con.execute("update derived.profiles set top_products = 'sku-x' where user_id = ?", [profiled])
    member = con.execute(one.format("segment_membership", 0)).fetchone()[0]
    con.execute("delete from derived.segment_history where user_id = ?", [member])
    device = con.execute(
        "select device_id from derived.identity_map where device_id_type = "
        "'domain_userid' and user_id is not null order by 1 limit 1"
    ).fetchone()[0]
    con.execute("update derived.identity_map set user_id = 'moved' where device_id = ?", [device])
    fan = con.execute(one.format("interactions", 5)).fetchone()[0]
    con.execute("update derived.interactions set affinity = affinity + 1 where user_id = ?", [fan])
    served = "(select rule_set_version from derived.current_user_recommendations limit 1)"
    recommended = con.execute(one.format("current_user_recommendations", 0)).fetchone()[0]
    con.execute(f"update derived.user_recommendations set score = score + 1 where user_id = ? "
                f"and rule_set_version = {served}", [recommended])  # fmt: skip
    con.execute(f"update derived.item_similarity set similarity = similarity / 2 "
                f"where rule_set_version = {served} and neighbour_rank = 1")  # fmt: skip

    second = sync.sync(con.cursor())
    assert second.changed["profiles"] == [profiled]
    assert second.changed["segments"] == [] and second.deleted == 1
    assert second.changed["devices"] == [device]
    assert second.changed["affinities"] == [fan]
    assert second.changed["recommendations"] == [recommended]
    assert second.tables.get("rules") == 1
    assert second.keys == 5, second  # and the deleted member's key
    assert store.get(batch_key("segments", member)) is None
    assert orjson.loads(store.get(device_key(device)) or b"null") == "moved"
    assert store.get(affinity_key(fan)) is not None

    fresh = MemoryStore()
    BatchSync(fresh).sync(con.cursor())
    assert contents(store) == contents(fresh)
    assert orjson.loads(store.get(RULES_KEY) or b"{}")["neighbours"]
    con.close()

"""The batch sync against Snowflake: the same serving tables, held in fakesnow (a Snowflake
emulator: Snowflake SQL through its connector, executed by DuckDB; no account is available
here), must fill the online store exactly as the DuckDB warehouse does, and a change in
Snowflake must reach the store as that change alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from serving.batch import BATCH_META_KEY, SNOWFLAKE, BatchSync, batch_key
from serving.stores.memory import MemoryStore
from tests.serving.conftest import copy_warehouse
from tests.serving.fakesnow_tables import copy_serving_tables

fakesnow = pytest.importorskip("fakesnow")
snowflake_connector = pytest.importorskip("snowflake.connector")


def widened(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, {"int32": "int64", "float": "double"}.get(kind, kind)) for name, kind in fields]


def contents(store: MemoryStore) -> dict[str, Any]:
    """Every key but the sync's clock, decoded, with each payload's as_of left out."""
    out = {}
    for key, raw in store._data.items():
        if key == BATCH_META_KEY:
            continue
        value = orjson.loads(raw)
        if isinstance(value, dict):
            value.pop("as_of", None)
        out[key] = value
    return out


@pytest.fixture
def snowflake(demo: Path, tmp_path: Path):
    """fakesnow holding the demo warehouse's serving tables, typed as on Snowflake."""
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    with fakesnow.patch():
        con = snowflake_connector.connect(database="persona", schema="derived")
        cur = con.cursor()
        copy_serving_tables(cur, warehouse)
        yield cur, warehouse
        con.close()


def test_snowflake_fills_the_store_as_duckdb_does(snowflake) -> None:
    cur, warehouse = snowflake
    from_snowflake, from_duckdb = MemoryStore(), MemoryStore()
    on_snowflake = BatchSync(from_snowflake, "derived", SNOWFLAKE)
    on_duckdb = BatchSync(from_duckdb, "derived")
    synced = on_snowflake.sync(cur)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        on_duckdb.sync(con)

    assert synced.keys > 100 and set(synced.tables) >= {"profiles", "segments", "rules"}
    # the same fields; Snowflake has 64-bit numbers only (NUMBER(38,0), FLOAT)
    assert on_snowflake.profile_fields == widened(on_duckdb.profile_fields or [])
    assert contents(from_snowflake) == contents(from_duckdb)

    # a change in Snowflake reaches the store as that change alone
    user = cur.execute("select user_id from profiles order by user_id limit 1").fetchone()[0]
    cur.execute("update profiles set sessions_7d = sessions_7d + 5 where user_id = %s", (user,))
    again = on_snowflake.sync(cur)
    assert again.tables["profiles"] == 1 and again.keys == 1, again
    profile = orjson.loads(from_snowflake.get(batch_key("profiles", user)))
    assert profile["sessions_7d"] == contents(from_duckdb)[batch_key("profiles", user)][
        "sessions_7d"] + 5  # fmt: skip


def test_an_id_is_a_bound_parameter_on_snowflake(snowflake) -> None:
    cur, _ = snowflake
    hostile = "x') or 1=1 --"
    cur.execute("insert into profiles (user_id, sessions_7d) values (%s, 1)", (hostile,))
    store = MemoryStore()
    BatchSync(store, "derived", SNOWFLAKE).sync(cur)
    assert orjson.loads(store.get(batch_key("profiles", hostile)))["sessions_7d"] == 1

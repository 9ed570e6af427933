"""The demo warehouse's serving tables copied into fakesnow (a Snowflake emulator: Snowflake SQL
through the connector's interface, executed by DuckDB), typed as dbt-snowflake creates them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVING = ("profiles", "segment_membership", "current_user_recommendations", "identity_map",
           "interactions", "current_item_similarity", "current_popular_items",
           "current_item_repurchase", "rule_set_versions")  # fmt: skip
# DuckDB's column types as dbt-snowflake creates them
TYPES = {"VARCHAR": "varchar", "BIGINT": "number(38,0)", "INTEGER": "number(38,0)",
         "HUGEINT": "number(38,0)", "DOUBLE": "float", "FLOAT": "float",
         "TIMESTAMP": "timestamp_ntz", "DATE": "date", "BOOLEAN": "boolean"}  # fmt: skip


def snowflake_type(duck: str) -> str:
    if duck.startswith("DECIMAL"):
        return duck.replace("DECIMAL", "number")
    return TYPES[duck]


def copy_serving_tables(cur: Any, warehouse: Path, database: str = "persona") -> None:
    """``warehouse``'s serving tables into ``database``.derived of the fakesnow connection
    whose cursor is ``cur`` (rows copied in bulk through fakesnow's own DuckDB)."""
    cur.execute(f"create database if not exists {database}")
    cur.execute(f"create schema if not exists {database}.derived")
    duck = cur._duck_conn
    duck.execute(f"attach '{warehouse}' as demo (read_only)")
    try:
        for table in SERVING:
            columns = duck.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_catalog = 'demo' and table_schema = 'derived' "
                "and table_name = ? order by ordinal_position", [table]).fetchall()  # fmt: skip
            # fakesnow keeps number(38,0) in 64 bits: a 128-bit sum past them (a digest such
            # as interactions.events_hash, which no reader of these tables reads) goes as float
            wide = {
                name
                for name, kind in columns
                if kind == "HUGEINT"
                and duck.execute(
                    f"select max(abs({name})) >= 2 ** 63 from demo.derived.{table}"
                ).fetchall()[0][0]
            }
            ddl = ", ".join(f"{name} {'float' if name in wide else snowflake_type(kind)}"
                            for name, kind in columns)  # fmt: skip
            cur.execute(f"create table {database}.derived.{table} ({ddl})")
            duck.execute(
                f"insert into {database}.derived.{table} select * from demo.derived.{table}"
            )
    finally:
        duck.execute("detach demo")

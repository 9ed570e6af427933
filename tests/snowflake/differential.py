"""Differential execution: the same events through both loaders, the Snowflake-compiled SQL of
every model on fakesnow, every model's rows compared with the DuckDB target's.

fakesnow executes Snowflake SQL by translating it to DuckDB, so this proves the semantics of
the Snowflake SQL (VARIANT paths, ``lateral flatten``, ``datediff``, ``regexp_like``, QUALIFY,
...) as far as fakesnow's translation is faithful; where it is not, docs/snowflake.md records
the gap with its evidence. Dynamic tables cannot run on fakesnow: each model's body (what the
dynamic table would hold) runs as ``create table ... as``; views stay views.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fakesnow.instance import FakeSnow

from loader import pipeline
from loader.contract import ENTITY_COLUMN_RE
from loader.enriched import Event
from loader.failed import FailedEvent
from loader.sinks import snowflake_tables as tables
from loader.sinks.duckdb import DuckDBSink
from loader.sinks.snowflake import SnowflakeSink
from tests.conftest import ROOT
from tests.snowflake.streaming_fake import FakeClient, FakeServer

DATABASE = "PERSONA"
BATCH_ROWS = 500
# a fixed rule-set version: dbt's run clock would otherwise differ between the two runs; no
# copying of unchanged users' lists (one retrain here, and the offline compile for Snowflake
# must not ask the warehouse whether a rule table exists, which is_incremental() would)
VARS = {
    "as_of": "latest_event",
    "recs_rule_set_version": "20260101T000000000000Z",
    "recs_reuse_unchanged": False,
}


@contextlib.contextmanager
def load_clock(start: datetime) -> Iterator[None]:
    """Both sinks stamp ``load_tstamp`` once per batch from ``utcnow``: the same sequence of
    batches then gets the same stamps on both engines (the dedupe orders by it)."""
    counter = iter(range(1_000_000))

    def tick() -> datetime:
        return start + timedelta(seconds=next(counter))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("loader.batch.utcnow", tick)
        mp.setattr("loader.sinks.snowflake.utcnow", tick)
        yield


class Fakesnow:
    """One fakesnow account with the atomic tables as docs/snowflake.md creates them."""

    def __init__(self) -> None:
        self.instance = FakeSnow()
        self.conn = self.instance.connect(database=DATABASE, schema="ATOMIC")
        self.cursor = self.conn.cursor()
        for schema in ("ATOMIC", "DERIVED", "DERIVED_INTERNAL", "RECS_INPUT"):
            self.cursor.execute(f"create schema if not exists {DATABASE}.{schema}")
        self.cursor.execute(tables.events_table(f"{DATABASE}.ATOMIC.EVENTS"))
        self.cursor.execute(tables.failed_events_table(f"{DATABASE}.ATOMIC.FAILED_EVENTS"))
        self.server = FakeServer(self.cursor, DATABASE, "ATOMIC")

    def sink(self, channel: str = "differential") -> SnowflakeSink:
        def add_column(name: str) -> None:
            self.cursor.execute(tables.add_entity_column(f"{DATABASE}.ATOMIC.EVENTS", name))

        columns = self.server.columns("EVENTS")
        return SnowflakeSink(FakeClient(self.server, "EVENTS"),
                             FakeClient(self.server, "FAILED_EVENTS"), channel,
                             columns, add_column)  # fmt: skip

    def execute(self, sql: str) -> None:
        self.cursor.execute(sql)

    def rows(self, relation: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        self.cursor.execute(f"select * from {relation}")
        names = [d[0].lower() for d in self.cursor.description]
        return names, list(self.cursor.fetchall())

    def close(self) -> None:
        self.conn.close()
        self.instance.duck_conn.close()


def load_both(
    items: list[Event | FailedEvent], warehouse: Path, snow: Fakesnow, start: datetime
) -> None:
    """The same items, in the same batches, through the DuckDB sink and the Snowflake sink."""
    with load_clock(start):
        duck = DuckDBSink(warehouse)
        pipeline.run(list(items), duck, batch_rows=BATCH_ROWS)
        duck.close()
    with load_clock(start):
        sink = snow.sink()
        pipeline.run(list(items), sink, batch_rows=BATCH_ROWS)
        sink.close()


def load_seeds(snow: Fakesnow) -> None:
    """The seeds as dbt seed would create them (the column types of dbt_project.yml)."""
    with (ROOT / "seeds" / "channel_groups.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    snow.execute(
        f"create or replace table {DATABASE}.DERIVED.CHANNEL_GROUPS (rule_order integer, "
        "channel varchar, mkt_medium varchar, mkt_source varchar, refr_medium varchar, "
        "has_clickid boolean)"
    )
    for row in rows:
        clickid = {"true": True, "false": False}.get((row["has_clickid"] or "").lower())
        values = [int(row["rule_order"]), row["channel"], row["mkt_medium"] or None,
                  row["mkt_source"] or None, row["refr_medium"] or None, clickid]  # fmt: skip
        snow.cursor.execute(
            f"insert into {DATABASE}.DERIVED.CHANNEL_GROUPS values (%s, %s, %s, %s, %s, %s)",
            values,
        )


@dataclass
class ModelRun:
    name: str
    materialized: str
    error: str | None = None


@dataclass
class Coverage:
    executed: list[ModelRun] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelRun]:
        return [m for m in self.executed if m.error]


def topological(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Models and snapshots in dependency order (dbt's own order for a full build)."""
    nodes = {k: n for k, n in manifest["nodes"].items()
             if n["resource_type"] in ("model", "snapshot")}  # fmt: skip
    done: set[str] = set()
    order: list[dict[str, Any]] = []

    def visit(key: str) -> None:
        if key in done or key not in nodes:
            return
        done.add(key)
        for dep in nodes[key]["depends_on"]["nodes"]:
            visit(dep)
        order.append(nodes[key])

    for key in sorted(nodes):
        visit(key)
    return order


def run_models(snow: Fakesnow, target: Path, duck: duckdb.DuckDBPyConnection) -> Coverage:
    """Every model's Snowflake-compiled body, in dependency order, on fakesnow. The snapshot
    (dbt-snowflake's merge, not the project's SQL) is copied from the DuckDB run instead."""
    manifest = json.loads((target / "manifest.json").read_text())
    coverage = Coverage()
    for node in topological(manifest):
        relation = f"{DATABASE}.{node['schema'].upper()}.{node['name'].upper()}"
        if node["resource_type"] == "snapshot":
            copy_table(duck, f"{node['schema']}.{node['name']}", snow, relation)
            continue
        materialized = node["config"]["materialized"]
        kind = "view" if materialized == "view" else "table"
        run = ModelRun(node["name"], materialized)
        try:
            snow.execute(f"create or replace {kind} {relation} as {node['compiled_code']}")
        except Exception as exc:  # recorded, and the test fails unless it is a known gap
            run.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        coverage.executed.append(run)
    return coverage


def copy_table(duck: duckdb.DuckDBPyConnection, source: str, snow: Fakesnow, target: str) -> None:
    table = duck.sql(f"select * from {source}").to_arrow_table()
    fake = snow.cursor._duck_conn  # fakesnow's DuckDB: the table's storage
    fake.register("_copied", table)
    fake.execute(f"create or replace table {target} as select * from _copied")
    fake.unregister("_copied")


# --- comparison -------------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """One form for a value whatever engine and driver produced it: numbers as rounded floats
    (ints stay ints), timestamps naive UTC, JSON (VARIANT text or DuckDB JSON/LIST) parsed."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else canonical(float(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return float(f"{value:.9g}")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return ("ts", value.isoformat())
    if isinstance(value, date):
        return ("date", value.isoformat())
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{") and stripped[-1:] in ("]", "}"):
            try:
                return ("json", json.dumps(json.loads(stripped), sort_keys=True))
            except ValueError:
                return value
        return value
    if isinstance(value, list | dict):
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return repr(value)


@dataclass
class Comparison:
    model: str
    duckdb_rows: int
    snowflake_rows: int
    columns: list[str]
    only_duckdb: list[tuple[Any, ...]]
    only_snowflake: list[tuple[Any, ...]]
    columns_only_duckdb: list[str]
    columns_only_snowflake: list[str]

    @property
    def equal(self) -> bool:
        return not self.only_duckdb and not self.only_snowflake

    def diff_columns(self) -> list[str]:
        """The columns whose values differ between the two sides' unmatched rows, when the
        rows pair up by their first column (the model's key)."""
        ours = {r[0]: r for r in self.only_duckdb}
        theirs = {r[0]: r for r in self.only_snowflake}
        cols: Counter[str] = Counter()
        for key in ours.keys() & theirs.keys():
            for name, a, b in zip(self.columns, ours[key], theirs[key], strict=True):
                if a != b:
                    cols[name] += 1
        return [c for c, _ in cols.most_common()]


def compare(
    model: str,
    duck: tuple[list[str], list[tuple[Any, ...]]],
    snow: tuple[list[str], list[tuple[Any, ...]]],
    ignore: Iterable[str] = (),
) -> Comparison:
    """Rows as multisets over the columns both sides have (entity columns a loader created on
    one side only are listed, not compared: the Snowflake table has the models' up front)."""
    d_names, d_rows = duck
    s_names, s_rows = snow
    skip = set(ignore)
    common = [c for c in d_names if c in s_names and c not in skip]
    di = [d_names.index(c) for c in common]
    si = [s_names.index(c) for c in common]
    d = Counter(tuple(canonical(r[i]) for i in di) for r in d_rows)
    s = Counter(tuple(canonical(r[i]) for i in si) for r in s_rows)
    only_d = sorted((d - s).elements(), key=repr)
    only_s = sorted((s - d).elements(), key=repr)
    return Comparison(model, len(d_rows), len(s_rows), common, only_d, only_s,
                      sorted(set(d_names) - set(s_names)),
                      sorted(set(s_names) - set(d_names)))  # fmt: skip


def entity_only(columns: Iterable[str]) -> bool:
    return all(ENTITY_COLUMN_RE.fullmatch(c) for c in columns)

"""The live refresh replays the SQL of dbt's last run (serving/plan.py): replayed cycles must
leave the warehouse as dbt would, and anything the plan cannot do must fall back to dbt."""

from __future__ import annotations

import itertools
from pathlib import Path

import duckdb
import pytest

from loader import pipeline
from loader.enriched import parse_line
from loader.sinks.duckdb import DuckDBSink
from loader.sources.synthetic import SyntheticConfig, generate_lines
from serving.batch import BatchSync
from serving.live import Refresher, Settings
from serving.stores.memory import MemoryStore
from tests.models.conftest import Dbt
from tests.serving.conftest import copy_warehouse

AS_OF = {"as_of": "latest_event"}
# Written by the snapshot with the clock of the run that wrote them.
CLOCK_COLUMNS = ("dbt_valid_from", "dbt_valid_to", "dbt_updated_at", "dbt_scd_id")
# Snapshots keep history a full refresh does not rebuild.
HISTORY = {"segment_history", "segment_changes"}


def load(warehouse: Path, config: SyntheticConfig, limit: int | None = None) -> None:
    lines = itertools.islice(generate_lines(config), limit)
    sink = DuckDBSink(str(warehouse))
    try:
        pipeline.run((parse_line(line) for line in lines), sink)
    finally:
        sink.close()


def refresher(warehouse: Path, tmp: Path, **overrides: float) -> Refresher:
    settings = Settings(source="-", listen="127.0.0.1:0", warehouse=str(warehouse), token="t",
                        state_dir=tmp / "state", dbt_vars=AS_OF, **overrides)  # fmt: skip
    con = duckdb.connect(str(warehouse))
    return Refresher(settings, BatchSync(MemoryStore()), con)


def tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    out = {}
    names = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = 'derived' and table_type = 'BASE TABLE' order by 1"
    ).fetchall()
    for (name,) in names:
        if name in HISTORY:
            continue
        cols = [c for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'derived' "
            "and table_name = ? order by ordinal_position", [name]).fetchall()
            if c not in CLOCK_COLUMNS]  # fmt: skip
        quoted = ", ".join(f'"{c}"' for c in cols)
        out[name] = con.execute(f'select {quoted} from derived."{name}" order by all').fetchall()
    return out


@pytest.mark.slow
def test_replayed_refreshes_equal_a_full_rebuild(demo: Path, tmp_path: Path) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    live = refresher(warehouse, tmp_path, all_models_seconds=3600)
    assert live.refresh() and live.dbt_runs == 1 and live.plan is not None
    aside = "select count(*), max(bucket_start) from derived.traffic_hourly"
    before = live.con.execute(aside).fetchall()

    # new shoppers, then a replay of events already loaded (duplicates) with more new ones:
    # replays of the served models (profiles and what they read) only
    load(warehouse, SyntheticConfig(users=12, days=1, seed=11))
    assert live.refresh(), live.last_error
    load(warehouse, SyntheticConfig(users=150, days=7, seed=3), limit=400)
    load(warehouse, SyntheticConfig(users=8, days=1, seed=12))
    assert live.refresh(), live.last_error
    assert (live.dbt_runs, live.replays, live.served_replays) == (1, 2, 2), live.last_error
    assert live.con.execute(aside).fetchall() == before  # an anomaly input: it waited
    # then every model, as every --all-models-seconds
    live.last_all = 0.0
    assert live.refresh(), live.last_error
    assert (live.dbt_runs, live.replays, live.served_replays) == (1, 3, 2)
    replayed = tables(live.con)
    live.con.close()

    (tmp_path / "rebuilt").mkdir()
    rebuilt = copy_warehouse(warehouse, tmp_path / "rebuilt" / "warehouse.duckdb")
    Dbt(rebuilt)("build", "--selector", "realtime", "--full-refresh",
                 "--exclude-resource-type", "test", "unit_test", vars=AS_OF)  # fmt: skip
    with duckdb.connect(str(rebuilt)) as con:
        full = tables(con)
    assert replayed.keys() == full.keys()
    new_users = {r[0] for r in replayed["profiles"]} - {r[0] for r in tables_of(demo)}
    assert new_users, "the new shoppers never reached profiles"
    for name in full:
        assert replayed[name] == full[name], name


def tables_of(warehouse: Path) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select user_id from derived.profiles").fetchall()


def test_a_plan_that_no_longer_fits_falls_back_to_dbt(demo: Path, tmp_path: Path) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    live = refresher(warehouse, tmp_path)
    assert live.refresh() and live.plan is not None

    # a table the plan refreshes is gone: the replay fails, dbt rebuilds it; a run that
    # created a table is no plan (its SQL creates what the next run refreshes): dbt again
    live.con.execute("drop table derived_internal.sessions_this_run")
    load(warehouse, SyntheticConfig(users=5, days=1, seed=21))
    assert live.refresh(), live.last_error
    assert (live.dbt_runs, live.replays) == (2, 0) and live.plan is None
    assert live.con.execute("select count(*) from derived_internal.sessions_this_run").fetchone()
    assert live.refresh() and (live.dbt_runs, live.replays) == (3, 0)
    assert live.refresh() and (live.dbt_runs, live.replays) == (3, 1)

    # the events gained a column (a new entity): dbt plans, whatever the replay would do
    live.con.execute("alter table atomic.events add column contexts_com_acme_thing_1 json")
    assert live.refresh(), live.last_error
    assert (live.dbt_runs, live.replays) == (4, 1)
    live.con.close()


def test_dbt_runs_again_after_dbt_seconds(demo: Path, tmp_path: Path) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    live = refresher(warehouse, tmp_path, dbt_seconds=0.001)
    assert live.refresh() and live.refresh()
    assert (live.dbt_runs, live.replays) == (2, 0)
    live.con.close()


def test_an_attached_database_does_not_disturb_the_plan(demo: Path, tmp_path: Path) -> None:
    """The snapshot publisher attaches its copy (another atomic.events, every derived table)
    while a refresh may run: the plan is this database's, and stays replayable."""
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    live = refresher(warehouse, tmp_path)
    assert live.refresh() and live.plan is not None
    live.con.execute(f"attach '{tmp_path / 'copy.duckdb'}' as persona_snapshot")
    live.con.execute("create schema persona_snapshot.atomic")
    live.con.execute("create table persona_snapshot.atomic.events (event_id varchar, x int)")
    load(warehouse, SyntheticConfig(users=5, days=1, seed=31))
    assert live.refresh(), live.last_error
    assert (live.dbt_runs, live.replays) == (1, 1)
    live.con.execute("detach persona_snapshot")
    live.con.close()


def test_a_refresh_is_all_or_nothing(tmp_path: Path) -> None:
    """One transaction for the whole replay: a step that fails undoes the steps before it, so
    the snapshot's copy or the sync never sees sessions refreshed and profiles not."""
    from serving.plan import Plan, PlanFailed, Step

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create table sessions as select 1 as n")
    con.execute("create table profiles as select 1 as n")
    refresh = [Step("model.persona.sessions", ["update sessions set n = n + 1"]),
               Step("model.persona.profiles", ["update profiles set n = n + 1"])]  # fmt: skip
    Plan(refresh, ()).replay(con.cursor)
    assert con.execute("select (select n from sessions), (select n from profiles)").fetchall() \
        == [(2, 2)]  # fmt: skip
    broken = [*refresh, Step("model.persona.users", ["select * from no_such_table"])]
    with pytest.raises(PlanFailed, match=r"model\.persona\.users"):
        Plan(broken, ()).replay(con.cursor)
    assert con.execute("select (select n from sessions), (select n from profiles)").fetchall() \
        == [(2, 2)]  # fmt: skip
    Plan(broken, ()).replay(con.cursor, only={"model.persona.sessions"})
    assert con.execute("select n from sessions").fetchall() == [(3,)]


def test_a_models_statements_run_as_one_script(tmp_path: Path) -> None:
    """A step's statements go to DuckDB in one call; each still runs, in order, also after a
    statement ending in a ``--`` comment (dbt's SQL may) or in its own semicolon."""
    from serving.plan import Plan, Step

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    step = Step("model.persona.t", ["create table t (n int); ", "insert into t values (1) -- one",
                                    "/* two */ insert into t values (2)",
                                    "update t set n = n * 10 where n = 2"])  # fmt: skip
    Plan([step], ()).replay(con.cursor)
    assert con.execute("select n from t order by n").fetchall() == [(1,), (20,)]

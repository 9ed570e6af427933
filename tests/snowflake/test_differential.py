"""The Snowflake SQL executed, not just parsed: every model's Snowflake-compiled body runs on
fakesnow over the events the Snowflake sink wrote (entity columns as ARRAY / OBJECT), and its
rows must equal the DuckDB target's, model by model, after normalizing types.

A difference is either fixed (in the SQL or the dispatch macros) or listed below as a fakesnow
translation gap, with the evidence, and in docs/snowflake.md. A listed gap must still show up
(so the list cannot rot); an unlisted difference fails with the model and its columns.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent
from loader.sources.csv import CsvFileSource
from loader.sources.synthetic import SyntheticConfig, generate_lines
from tests.conftest import REFERENCE, ROOT
from tests.models.conftest import Dbt
from tests.snowflake.conftest import FAKESNOW_ARROW_COPY
from tests.snowflake.differential import (
    VARS,
    Comparison,
    Coverage,
    Fakesnow,
    compare,
    load_both,
    load_seeds,
    run_models,
)

pytestmark = pytest.mark.filterwarnings(FAKESNOW_ARROW_COPY)


@dataclass(frozen=True)
class Gap:
    """A difference that is fakesnow's translation, not Snowflake's semantics: ``normalize``
    turns fakesnow's value into the one Snowflake gives."""

    evidence: str
    normalize: Callable[[Any], Any]


SUM_AS_DOUBLE = Gap(
    "fakesnow wraps every SUM/AVG argument in TRY_CAST(... AS DOUBLE) "
    "(fakesnow/transforms/transforms.py, numeric_agg_implicit_cast), so "
    "sum(case when ... then 1 else 0 end) is a DOUBLE and casts to text as '28.0'; on Snowflake "
    "SUM of an integer is NUMBER(38,0) and casts as '28'.",
    # only the counts the reasons print (a count is followed by what it counts)
    lambda v: (
        re.sub(r"\b(\d+)\.0(?= (events|page views|failed|inputs)\b)", r"\1", v)
        if isinstance(v, str)
        else v
    ),
)
# (model, column) -> the gap; the column's value on the fakesnow side is normalized.
GAPS: dict[tuple[str, str], Gap] = {
    ("behaviour_anomalies", "reason"): SUM_AS_DOUBLE,
    ("traffic_anomalies", "reason"): SUM_AS_DOUBLE,
    ("data_quality_anomalies", "reason"): SUM_AS_DOUBLE,
    ("anomalies", "reason"): SUM_AS_DOUBLE,  # the union of the detectors
}
# (model, column) -> why fakesnow's value cannot be compared at all.
UNCOMPARABLE: dict[tuple[str, str], str] = {
    ("product_events", "product_index"): (
        "fakesnow's FLATTEN numbers elements with row_number() OVER () over DuckDB's unnest "
        "(fakesnow/macros.py, FS_FLATTEN), an order DuckDB does not guarantee: INDEX 0 can be "
        "the second element (seen on the 120-user run). Snowflake's INDEX is the array "
        "position. Every other column of the row (the product) is compared."
    ),
    ("interactions", "events_hash"): (
        "a hash of each item's events, DuckDB's hash() on one side and Snowflake's HASH() (on "
        "fakesnow, DuckDB's again, summed as a double) on the other: each engine compares it "
        "only with its own earlier values (user_rule_inputs)."
    ),
    ("user_rule_inputs", "events_hash"): "the sum of interactions.events_hash (above).",
}
# Values from dbt's invocation (run_started_at, invocation_id), not from the events: each run
# has its own, on any engine.
RUN_METADATA = {"rule_set_versions": {"trained_at", "invocation_id"}}
INTERNAL = {"session_bounds", "sessions_this_run", "devices_this_run"}
SEGMENT_HISTORY_COLUMNS = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")


def late_and_duplicated(events: list[Event]) -> list[Event]:
    """Cases the generator makes rarely, made certain: pings sent 4 days after they happened
    (dropped), exact copies and copies collected a minute later (deduplicated)."""
    pings = [e for e in events if e["event_name"] == "page_ping"]
    late = [e | {"event_id": str(uuid.UUID(int=i + 1, version=4)),
                 "dvce_sent_tstamp": e["dvce_sent_tstamp"] + timedelta(days=4),
                 "collector_tstamp": e["collector_tstamp"] + timedelta(days=4)}
            for i, e in enumerate(pings[:5])]  # fmt: skip
    views = [e for e in events if e["event_name"] == "page_view"]
    copies = [dict(e) for e in views[:5]]
    later = [e | {"collector_tstamp": e["collector_tstamp"] + timedelta(minutes=1)}
             for e in views[5:10]]  # fmt: skip
    return late + copies + later


def stream(users: int, days: int, seed: int) -> list[Event | FailedEvent]:
    """Snowplow's reference events, a synthetic shop (bots, logins on several devices, late
    events, duplicates) and a few lines that fail to parse."""
    items: list[Event | FailedEvent] = list(
        CsvFileSource(str(REFERENCE / "snowplow-web-0.15.2" / "events.csv"))
    )
    config = SyntheticConfig(users=users, days=days, seed=seed)
    shop = [parse_line(line) for line in generate_lines(config)]
    events = [e for e in shop if isinstance(e, dict)]
    items += shop + late_and_duplicated(events)
    items += [parse_line(f"not an event {i}") for i in range(12)]
    return items


@dataclass
class Run:
    coverage: Coverage
    comparisons: dict[str, Comparison]
    duck: duckdb.DuckDBPyConnection
    snow: Fakesnow
    target: Path


def differential(dbt: Dbt, target: Path, items: list[Event | FailedEvent]) -> Run:
    snow = Fakesnow()
    load_both(items, dbt.warehouse, snow, datetime(2026, 3, 1))
    dbt("build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test",
        vars=VARS)  # fmt: skip
    duck = dbt.connect()
    load_seeds(snow)
    coverage = run_models(snow, target, duck)
    comparisons = {}
    for model in coverage.executed:
        if model.error:
            continue
        schema = "derived_internal" if model.name in INTERNAL else "derived"
        cursor = duck.execute(f"select * from {schema}.{model.name}")
        ours = ([d[0] for d in cursor.description], cursor.fetchall())
        theirs = snow.rows(f"PERSONA.{schema.upper()}.{model.name.upper()}")
        ignore = set(RUN_METADATA.get(model.name, ()))
        ignore |= {col for (m, col) in UNCOMPARABLE if m == model.name}
        comparisons[model.name] = compare(
            model.name, ours, normalized(model.name, theirs), ignore=ignore
        )
    return Run(coverage, comparisons, duck, snow, target)


def normalized(model: str, rows: tuple[list[str], list[tuple[Any, ...]]]) -> Any:
    names, values = rows
    fixes = {names.index(col): gap.normalize for (m, col), gap in GAPS.items()
             if m == model and col in names}  # fmt: skip
    if not fixes:
        return rows
    return names, [tuple(fixes[i](v) if i in fixes else v for i, v in enumerate(row))
                   for row in values]  # fmt: skip


@pytest.fixture(scope="module")
def default_run(make_dbt: Callable[[str], Dbt], snowflake_target: Path) -> Any:
    run = differential(make_dbt("differential"), snowflake_target, stream(30, 8, seed=2))
    yield run
    run.duck.close()
    run.snow.close()


def models_of(target: Path) -> set[str]:
    import json

    manifest = json.loads((target / "manifest.json").read_text())
    return {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def assert_equal_or_explained(run: Run) -> None:
    differing = {name: c for name, c in run.comparisons.items() if not c.equal}
    assert not differing, "\n".join(
        f"{name}: {len(c.only_duckdb)} rows only on DuckDB, {len(c.only_snowflake)} only on "
        f"fakesnow; differing columns {c.diff_columns()}; e.g. DuckDB {c.only_duckdb[:1]} "
        f"fakesnow {c.only_snowflake[:1]}"
        for name, c in differing.items()
    )
    for name, c in run.comparisons.items():
        # only entity columns may exist on one side: the Snowflake table has the models' up front
        extra = set(c.columns_only_duckdb) | set(c.columns_only_snowflake)
        assert all(col.startswith(("contexts_", "unstruct_event_")) for col in extra), (name, extra)


def test_every_model_runs_on_fakesnow(default_run: Run) -> None:
    ran = {m.name for m in default_run.coverage.executed}
    assert ran == models_of(default_run.target)  # every model, the retrained rule sets too
    assert not default_run.coverage.failed, [(m.name, m.error) for m in default_run.coverage.failed]


def test_every_model_equals_the_duckdb_target(default_run: Run) -> None:
    assert_equal_or_explained(default_run)
    # and the comparison compared something: the stream reaches every layer
    rows = {name: c.duckdb_rows for name, c in default_run.comparisons.items()}
    for model in ("events", "product_events", "page_views", "sessions", "quarantined_sessions",
                  "identity_map", "users", "profiles", "segment_membership", "audiences",
                  "behaviour_anomalies", "failed_events_hourly", "interactions",
                  "item_similarity", "user_recommendations"):  # fmt: skip
        assert rows[model] > 0, model


def test_every_listed_gap_still_shows(default_run: Run) -> None:
    """Without its normalization, a listed gap makes its model differ (where the default
    stream gives the model rows whose text shows it): when fakesnow (or the SQL) changes so that
    it no longer does, the entry must go."""
    shown = 0
    for (model, column), _gap in GAPS.items():
        cursor = default_run.duck.execute(f"select * from derived.{model}")
        ours = ([d[0] for d in cursor.description], cursor.fetchall())
        raw = compare(model, ours, default_run.snow.rows(f"PERSONA.DERIVED.{model.upper()}"))
        if ours[1] and any(".0 " in str(row) for row in raw.only_snowflake):
            assert raw.diff_columns() == [column], (model, raw.diff_columns())
            shown += 1
    assert shown >= 2  # behaviour_anomalies and anomalies in the default stream


def test_the_stream_has_the_cases_it_claims(default_run: Run) -> None:
    duck = default_run.duck
    (bots,) = duck.execute("select count(*) from derived.events where is_bot").fetchone()
    (loaded,) = duck.execute("select count(*) from atomic.events").fetchone()
    (kept,) = duck.execute("select count(*) from derived.events").fetchone()
    (multi,) = duck.execute(
        "select count(*) from (select user_id from derived.identity_map "
        "where user_id is not null group by user_id having count(*) > 1)"
    ).fetchone()
    (failed,) = duck.execute("select count(*) from atomic.failed_events").fetchone()
    assert bots > 0 and multi > 0 and failed >= 12
    assert loaded - kept >= 15  # 5 late pings and 10 copies at least, dropped or deduplicated


def test_a_wrong_json_path_is_caught(default_run: Run) -> None:
    """The bug this test exists for: a VARIANT path that parses and runs but reads the wrong
    entity. Planted in the compiled `events` body, the comparison must fail on page_view_id."""
    import json

    manifest = json.loads((default_run.target / "manifest.json").read_text())
    (node,) = [n for n in manifest["nodes"].values() if n["name"] == "events"
               and n["resource_type"] == "model"]  # fmt: skip
    code = node["compiled_code"]
    planted = code.replace("web_page_1[0]:id", "web_page_1[1]:id")
    assert planted != code
    default_run.snow.execute(f"create or replace table PERSONA.DERIVED.EVENTS_PLANTED as {planted}")
    cursor = default_run.duck.execute("select * from derived.events")
    ours = ([d[0] for d in cursor.description], cursor.fetchall())
    result = compare("events", ours, default_run.snow.rows("PERSONA.DERIVED.EVENTS_PLANTED"))
    assert not result.equal and result.diff_columns() == ["page_view_id"]


def test_the_docs_table_lists_every_model(default_run: Run) -> None:
    docs = (ROOT / "docs" / "snowflake.md").read_text()
    table = docs.split("## Differential execution", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert listed == set(default_run.comparisons), set(default_run.comparisons) ^ listed


@pytest.mark.slow
def test_a_month_of_a_bigger_shop_equals_the_duckdb_target(
    make_dbt: Callable[[str], Dbt], snowflake_target: Path
) -> None:
    """Five weeks, so the traffic detectors have their four weekly baselines, and more users."""
    run = differential(make_dbt("differential-big"), snowflake_target, stream(120, 36, seed=5))
    try:
        assert not run.coverage.failed, [(m.name, m.error) for m in run.coverage.failed]
        assert_equal_or_explained(run)
        assert run.comparisons["traffic_hourly"].duckdb_rows > 0
    finally:
        run.duck.close()
        run.snow.close()

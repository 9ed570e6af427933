"""Run the real dbt project, in-process, against scratch DuckDB files."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from loader import pipeline
from loader.enriched import Event, parse_line
from loader.sinks.duckdb import DuckDBSink
from loader.sources.synthetic import SyntheticConfig, generate_lines
from recs.dbt_invoke import environment, failures
from tests.conftest import ROOT


def compile_for_snowflake(work: Path, *args: str, vars: dict | None = None) -> Path:
    """Compile the project for the Snowflake target, offline (no account, no cache): the
    compiled SQL lands under the returned target path."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "profiles.example.yml", work / "profiles.yml")
    extra = ["--vars", json.dumps(vars, ensure_ascii=False)] if vars else []
    env = {"PERSONA_TARGET": "snowflake", "SNOWFLAKE_ACCOUNT": "offline-check",
           "PERSONA_TARGET_LAG_USERS": "5 minutes"}  # fmt: skip
    with environment(env):
        result = dbtRunner().invoke(
            ["compile", "--no-populate-cache", *args, *extra, "--project-dir", str(ROOT),
             "--profiles-dir", str(work), "--target-path", str(work / "target"),
             "--log-path", str(work / "logs"), "--quiet"]
        )  # fmt: skip
    assert result.success, failures(result)
    return work / "target"


class Dbt:
    """The dbt project bound to one warehouse file: ``dbt("build")`` raises if anything fails."""

    def __init__(self, warehouse: Path, project: Path = ROOT) -> None:
        self.warehouse = warehouse
        self.project = project
        self.work = warehouse.parent
        (self.work / "profiles").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "profiles.example.yml", self.work / "profiles" / "profiles.yml")

    def __call__(self, *args: str, vars: dict | None = None, schema: str = "derived") -> None:
        extra = ["--vars", json.dumps(vars, ensure_ascii=False)] if vars else []
        env = {"PERSONA_DUCKDB": str(self.warehouse), "PERSONA_TARGET": "duckdb"}
        env["PERSONA_SCHEMA"] = schema
        with environment(env):
            result = dbtRunner().invoke(
                [
                    *args, *extra,
                    "--project-dir", str(self.project),
                    "--profiles-dir", str(self.work / "profiles"),
                    "--target-path", str(self.work / f"target-{schema}"),
                    "--log-path", str(self.work / "logs"),
                    "--quiet",
                ]
            )  # fmt: skip
        if not result.success:
            raise AssertionError(f"dbt {' '.join(args)} failed: {failures(result)}")

    def load(self, events: Iterable[Event]) -> None:
        sink = DuckDBSink(self.warehouse)
        pipeline.run(events, sink)
        sink.close()

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.warehouse))


@pytest.fixture(scope="session")
def make_dbt(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Dbt]:
    return lambda name: Dbt(tmp_path_factory.mktemp(name) / "warehouse.duckdb")


@pytest.fixture(scope="session")
def shop(make_dbt: Callable[[str], Dbt]) -> tuple[Dbt, list[Event]]:
    """A synthetic shop, 400 users over 10 days, loaded and built once for the session."""
    events = [
        parse_line(line) for line in generate_lines(SyntheticConfig(users=400, days=10, seed=7))
    ]
    assert all(isinstance(e, dict) for e in events)
    # Pings sent 4 days after they happened: a phone that was offline. Models must drop them.
    pings = [e for e in events if e["event_name"] == "page_ping"][:5]
    late = timedelta(days=4)
    events += [
        e
        | {
            "event_id": str(uuid.UUID(int=i + 1, version=4)),
            "dvce_sent_tstamp": e["dvce_sent_tstamp"] + late,
            "collector_tstamp": e["collector_tstamp"] + late,
        }
        for i, e in enumerate(pings)
    ]
    dbt = make_dbt("shop")
    dbt.load(events)
    # the refresh, data tests and unit tests included; test_recommendations retrains on it
    dbt("build", "--selector", "realtime", vars={"as_of": "latest_event"})
    return dbt, events

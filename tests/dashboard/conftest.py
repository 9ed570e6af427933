"""A small warehouse as `make demo` builds one (every model, the dashboard's aggregates and a
rule set), with a few failed events, built once per session; the app reads a copy of it (dbt,
in this process, keeps the original open)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from loader.enriched import parse_line
from loader.sources.synthetic import SyntheticConfig, generate_lines
from tests.models.conftest import Dbt
from tests.serving.conftest import copy_warehouse

BAD_LINES = ["not a snowplow line", "two\tfields", "x" * 400]


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dbt = Dbt(tmp_path_factory.mktemp("dashboard-build") / "warehouse.duckdb")
    lines = list(generate_lines(SyntheticConfig(users=120, days=7, seed=11)))
    dbt.load(parse_line(line, "file:test.tsv") for line in [*lines, *BAD_LINES])
    dbt("build", "--exclude-resource-type", "test", "unit_test", vars={"as_of": "latest_event"})
    copy = tmp_path_factory.mktemp("dashboard") / "warehouse.duckdb"
    return copy_warehouse(dbt.warehouse, copy)


@pytest.fixture(scope="session")
def sql(warehouse: Path):
    """Run SQL against the warehouse the app reads (read-only, like the app)."""

    def run(statement: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(statement, params or []).fetchall()

    return run


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """An evaluation and a cadence report as `persona recs evaluate --json` and `persona recs
    cadence --json` write them."""
    k = 10
    metrics = {
        "map": 0.21,
        f"map@{k}": 0.19,
        f"ndcg@{k}": 0.25,
        f"precision@{k}": 0.08,
        f"recall@{k}": 0.31,
    }
    baseline = {name: value / 2 for name, value in metrics.items()}
    (tmp_path / "recs-evaluation.json").write_text(
        json.dumps({**metrics, "baseline": baseline, "rows": 12345, "users": 678, "k": k})
    )
    results = [
        {
            "cadence": c,
            f"ndcg@{k}": n,
            f"precision@{k}": 0.1,
            "retrain_seconds": 2.0,
            "cost_seconds_per_day": cost,
        }
        for c, n, cost in (("hour", 0.30, 48.0), ("day", 0.29, 2.0), ("week", 0.2, 0.3))
    ]
    (tmp_path / "recs-cadence.json").write_text(
        json.dumps({"results": results, "recommended": "day", "rule": "the rule"})
    )
    return tmp_path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~20 s (still runs by default)")

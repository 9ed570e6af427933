"""The project compiled for Snowflake, offline: every statement parses as Snowflake SQL, no
DuckDB-only function leaks through, and every model is a dynamic table.

No account is available here; what this cannot prove (that Snowflake accepts each dynamic table
with refresh_mode INCREMENTAL) is listed in docs/snowflake.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import sqlglot
from dbt.cli.main import dbtRunner

from tests.conftest import ROOT

DUCKDB_ONLY = ("json_extract_string", "regexp_matches", "date_diff(", "epoch(", "strftime(")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("snowflake")
    shutil.copy(ROOT / "profiles.example.yml", work / "profiles.yml")
    env = {"PERSONA_TARGET": "snowflake", "SNOWFLAKE_ACCOUNT": "offline-check",
           "PERSONA_TARGET_LAG_USERS": "5 minutes"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        result = dbtRunner().invoke(
            # every model: the default selector leaves out the retrain rule sets
            ["compile", "--no-populate-cache", "--select", "fqn:*", "--project-dir", str(ROOT),
             "--profiles-dir", str(work), "--target-path", str(work / "target"),
             "--log-path", str(work / "logs"), "--quiet"]
        )  # fmt: skip
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert result.success, result.exception
    return work / "target"


def test_every_compiled_statement_parses_as_snowflake(compiled: Path) -> None:
    files = sorted((compiled / "compiled").rglob("*.sql"))
    assert len(files) > 10
    for path in files:
        sql = path.read_text()
        sqlglot.parse(sql, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE)
        lowered = re.sub(r"'[^']*'", "''", sql.lower())
        leaked = [f for f in DUCKDB_ONLY if f in lowered]
        assert not leaked, f"{path.name} uses DuckDB-only {leaked}"


def test_models_are_dynamic_tables_with_explicit_refresh(compiled: Path) -> None:
    manifest = json.loads((compiled / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert {m["name"] for m in models} >= {"events", "page_views", "sessions", "users"}
    for model in models:
        config = model["config"]
        if "retrain" in config["tags"]:
            continue  # versioned rule sets: see the next test
        assert config["materialized"] == "dynamic_table", model["name"]
        assert config["refresh_mode"] == "INCREMENTAL", model["name"]
        assert config["target_lag"], model["name"]
        lag = {"events": "downstream", "session_bounds": "downstream",
               "product_events": "downstream",
               "users": "5 minutes", "identity_map": "5 minutes"}  # the users layer  # fmt: skip
        assert config["target_lag"] == lag.get(model["name"], "1 minute"), model["name"]
        # the DuckDB incremental machinery must not render into a dynamic table's query
        assert "_persona_watermarks" not in model["compiled_code"], model["name"]


def test_rule_sets_are_versioned_tables_outside_the_refresh(compiled: Path) -> None:
    """The recommendation rule sets keep one version per retrain: incremental tables (delete+insert
    by version) and views over the published version, never dynamic tables that Snowflake would
    refresh on its own."""
    manifest = json.loads((compiled / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    expected = {
        "interactions": "table",
        "item_similarity": "incremental",
        "popular_items": "incremental",
        "user_recommendations": "incremental",
        "rule_set_versions": "incremental",
        "current_item_similarity": "view",
        "current_popular_items": "view",
        "current_user_recommendations": "view",
    }
    retrain = {name for name, m in models.items() if "retrain" in m["config"]["tags"]}
    assert retrain == set(expected)
    for name, materialized in expected.items():
        config = models[name]["config"]
        assert config["materialized"] == materialized, name
        if materialized == "incremental":
            assert config["unique_key"] == "rule_set_version", name
            assert config["incremental_strategy"] == "delete+insert", name
    selectors = json.loads((compiled / "manifest.json").read_text())["selectors"]
    assert selectors["realtime"]["default"] is True

"""Fixtures of the Snowflake tests: the project compiled for Snowflake once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

from recs.dbt_invoke import environment, failures
from tests.conftest import ROOT
from tests.models.conftest import make_dbt  # noqa: F401 - the fixture
from tests.snowflake.differential import VARS

# A probe of the PII post-hook: an analysis whose yml marks two columns (both ways dbt accepts
# meta) renders what snowflake__pii_tags() gives a model (tests/snowflake/test_governance.py).
PII_PROBE_SQL = "{{ persona.snowflake__pii_tags() }}\n"
PII_PROBE_YML = """version: 2
analyses:
  - name: pii_probe
    columns:
      - {name: user_id, meta: {pii: true}}
      - {name: page_url}
      - {name: domain_userid, config: {meta: {pii: true}}}
"""
PROJECT = ("dbt_project.yml", "selectors.yml", "models", "macros", "seeds", "snapshots")


@pytest.fixture(scope="session")
def snowflake_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every model compiled for the Snowflake target, offline, with the differential run's
    vars: a copy of the project plus the PII probe, compiled once for the session."""
    work = tmp_path_factory.mktemp("sf-compile")
    project = work / "project"
    project.mkdir()
    for name in PROJECT:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "tests" / "dbt", project / "tests" / "dbt")
    (project / "analyses").mkdir()
    (project / "analyses" / "pii_probe.sql").write_text(PII_PROBE_SQL)
    (project / "analyses" / "_probe.yml").write_text(PII_PROBE_YML)
    shutil.copy(ROOT / "profiles.example.yml", work / "profiles.yml")
    env = {"PERSONA_TARGET": "snowflake", "SNOWFLAKE_ACCOUNT": "offline-check",
           "PERSONA_TARGET_LAG_USERS": "5 minutes"}  # fmt: skip
    with environment(env):
        result = dbtRunner().invoke(
            ["compile", "--no-populate-cache", "--select", "fqn:*", "--vars", json.dumps(VARS),
             "--project-dir", str(project), "--profiles-dir", str(work),
             "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
             "--quiet"]
        )  # fmt: skip
    assert result.success, failures(result)
    return work / "target"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: over ~20 s; still runs in CI")


# fakesnow's cursor copies every DB-API result to Arrow and DuckDB 2.0 warns about the copy
FAKESNOW_ARROW_COPY = "ignore:Arrow output on a DB-API result:UserWarning"

"""Fixtures of the Snowflake tests: the project compiled for Snowflake once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.conftest import compile_for_snowflake, make_dbt  # noqa: F401 - the fixture
from tests.snowflake.differential import VARS


@pytest.fixture(scope="session")
def snowflake_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every model compiled for the Snowflake target with the differential run's vars."""
    return compile_for_snowflake(tmp_path_factory.mktemp("sf-diff"), "--select", "fqn:*",
                                 vars=VARS)  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: over ~20 s; still runs in CI")


# fakesnow's cursor copies every DB-API result to Arrow and DuckDB 2.0 warns about the copy
FAKESNOW_ARROW_COPY = "ignore:Arrow output on a DB-API result:UserWarning"

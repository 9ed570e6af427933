"""The project as dbt's own commands show it: no default selector hides models from `dbt ls`
or `dbt docs generate`, and the two schedules split the models between them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

from tests.conftest import ROOT


def ls(tmp: Path, *args: str) -> set[str]:
    shutil.copy(ROOT / "profiles.example.yml", tmp / "profiles.yml")
    result = dbtRunner().invoke(
        ["ls", "--resource-type", "model", "--output", "name", *args, "--project-dir",
         str(ROOT), "--profiles-dir", str(tmp), "--target-path", str(tmp / "target"),
         "--log-path", str(tmp / "logs"), "--quiet"]
    )  # fmt: skip
    assert result.success, result.exception
    return set(result.result)


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    tmp = tmp_path_factory.mktemp("ls")
    return {
        "plain": ls(tmp),
        "realtime": ls(tmp, "--selector", "realtime"),
        "retrain": ls(tmp, "--selector", "retrain"),
    }


def test_a_plain_dbt_ls_lists_every_model_the_recommendations_included(listed) -> None:
    # SQL and Python models; item_weights_ease is enabled only by recs_similarity: ease
    files = [*(ROOT / "models").rglob("*.sql"), *(ROOT / "models").rglob("*.py")]
    models = {p.stem for p in files} - {"item_weights_ease"}
    assert listed["plain"] == models
    assert {"user_recommendations", "current_user_recommendations"} <= listed["plain"]


def test_the_refresh_and_the_retrain_split_the_project(listed) -> None:
    assert listed["realtime"] & listed["retrain"] == set()
    assert listed["realtime"] | listed["retrain"] == listed["plain"]
    assert "user_recommendations" in listed["retrain"] and "sessions" in listed["realtime"]

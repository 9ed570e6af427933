"""`python -m udfs evaluate` and `cadence` on a small log with taste groups: the dbt models run
for real on scratch DuckDB files (a few seconds per retrain)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from udfs.__main__ import main
from udfs.evaluate import split

START = datetime(2026, 1, 1)


def taste_log(users: int = 60, days: int = 12, seed: int = 1) -> list[tuple]:
    """Each user likes one of three groups of 12 items and touches 10 of them over the days."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        group = u % 3
        items = rng.sample([f"i{group}-{n:02d}" for n in range(12)], 10)
        for n, item in enumerate(items):
            at = START + timedelta(days=days * n / 10, hours=rng.random() * 20)
            rows.append((f"u{u:03d}", item, at, 1.0))
    return rows


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "log.csv"
    lines = ["user_id,item_id,timestamp,weight"]
    lines += [f"{u},{i},{t.isoformat(sep=' ')},{w}" for u, i, t, w in taste_log()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_splits_are_per_user() -> None:
    rows = taste_log()
    train, test = split(rows, "stratified", 0.75)
    assert len(train) == 60 * 8 and len(test) == 60 * 2  # round(0.75 * 10) per user
    train, test = split(rows, "temporal", 0.75)
    last_train: dict[str, datetime] = {}
    for user, _, at, _ in train:
        last_train[user] = max(at, last_train.get(user, at))
    assert all(at >= last_train[user] for user, _, at, _ in test)


def test_evaluate_json_scores_the_dbt_models_next_to_popularity(
    log_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--interactions", str(log_csv), "--k", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"map", "ndcg@5", "precision@5", "recall@5", "baseline", "rows", "seconds"} <= set(
        report
    )
    assert report["rows"] == 600
    assert set(report["baseline"]) >= {"map", "ndcg@5", "precision@5", "recall@5"}
    # taste groups: co-occurrence finds the user's group, popularity cannot
    assert report["precision@5"] > report["baseline"]["precision@5"]
    assert report["ndcg@5"] > 0.3


def test_cadence_backtest_draws_the_curve_and_names_a_cadence(
    log_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "cadence.png"
    code = main(["cadence", "--interactions", str(log_csv), "--cadences", "day,week",
                 "--backtest-days", "4", "--slots", "2", "--k", "5", "--out", str(png),
                 "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["cadence"] for r in report["results"]] == ["day", "week"]
    assert report["recommended"] in ("day", "week")
    day, week = report["results"]
    assert day["cost_seconds_per_day"] > week["cost_seconds_per_day"]  # 7 retrains vs 1
    assert "rule" in report

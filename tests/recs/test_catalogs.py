"""Two generated catalogs with a known right answer, evaluated and tuned through the real dbt
retrain: one where people buy the same things again ("buy again" is the answer: each user's
staples, bought on a rhythm, from a catalog too large for co-occurrence or popularity to find
them), and one where they never do ("similar items": taste groups, every item touched once)."""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from recs import tune
from recs.evaluate import evaluate
from tests.conftest import ROOT
from tests.recs.test_evaluate import taste_log

START = datetime(2026, 1, 1)
K = 5


def staples_log(users: int = 60, days: int = 60, seed: int = 2) -> list[tuple]:
    """Each user buys 4 staples of 300 every 3, 5 or 7 days, and 6 one-off items of 2,000."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        user = f"u{u:03d}"
        for item in rng.sample([f"s{n:03d}" for n in range(300)], 4):
            every = rng.choice([3, 5, 7])
            t = rng.random() * every
            while t < days:
                rows.append((user, item, START + timedelta(days=t), 1.0))
                t += every
        for _ in range(6):
            at = START + timedelta(days=rng.random() * days)
            rows.append((user, f"x{rng.randrange(2000):04d}", at, 1.0))
    return rows


def ndcg(part: dict[str, Any]) -> tuple[float, float, float]:
    """The rule set's, popularity's and buy-again's nDCG@K of one split."""
    base = part["baselines"]
    key = f"ndcg@{K}"
    return part[key], base["popularity"][key], base["buy_again"][key]


def test_evaluate_tells_the_truth_on_a_buy_again_catalog() -> None:
    """Seen items removed (the old default) the rule set loses to buy-again, and the report
    says so; with purchases allowed back it beats popularity by far, in both temporal splits."""
    rows = staples_log()
    removed = evaluate(rows, k=K, how="global")
    rule_set, popularity, buy_again = ndcg(removed)
    assert buy_again > 0.8 and rule_set < 0.1 and popularity < 0.1
    again = evaluate(rows, k=K, how="temporal", dbt_vars={"recs_recommend_again": ["interaction"]})
    assert set(again["splits"]) == {"temporal", "global"}
    for split in ("temporal", "global"):
        rule_set, popularity, buy_again = ndcg(again["splits"][split])
        assert rule_set >= buy_again > 0.8 > 0.1 > popularity, split
    cut = datetime.fromisoformat(again["splits"]["global"]["cut"])
    assert START < cut < START + timedelta(days=60)


@pytest.mark.parametrize(
    ("catalog", "again"),
    [(staples_log, True), (taste_log, False)],
    ids=["buy-again-catalog", "similar-items-catalog"],
)
def test_tune_finds_the_answer_of_each_catalog_and_writes_it(
    tmp_path: Path, catalog: Any, again: bool
) -> None:
    """Three retrains each: the current values (buy-again off), buy-again on, and one more."""
    project = tmp_path / "dbt_project.yml"
    shutil.copy(ROOT / "dbt_project.yml", project)
    report = tune.tune(catalog(), k=K, max_retrains=3, base_vars=tune.project_vars(project))
    assert len(report["trials"]) == 3
    assert bool(report["chosen"]["recs_recommend_again"]) is again
    score, base = report[f"ndcg@{K}"], report["baselines"]
    assert score > base["popularity"][f"ndcg@{K}"]
    assert score >= base["buy_again"][f"ndcg@{K}"]
    assert score >= report["default"][f"ndcg@{K}"]  # never worse than where it started
    written = tune.write(project, report)
    after = yaml.safe_load(project.read_text())["vars"]
    assert after["recs_recommend_again"] == report["chosen"]["recs_recommend_again"]
    assert after["recs_tuning"]["score"] == pytest.approx(score, abs=1e-6)
    assert written["recs_tuning"] == after["recs_tuning"]
    # only the vars' lines changed: every comment is kept
    comments = [line for line in project.read_text().splitlines() if line.lstrip().startswith("#")]
    original = (ROOT / "dbt_project.yml").read_text().splitlines()
    assert comments == [line for line in original if line.lstrip().startswith("#")]

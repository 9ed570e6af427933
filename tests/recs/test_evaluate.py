"""`python -m udfs evaluate` and `cadence` on a small log with taste groups: the dbt models run
for real on scratch DuckDB files (a few seconds per retrain)."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from recs.cli import main
from recs.evaluate import InputError, evaluate, read_log, split
from tests.conftest import ROOT

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
    day, week = report["results"]
    assert day["cost_seconds_per_day"] > week["cost_seconds_per_day"]  # 7 retrains vs 1
    # the rule, by hand: daily only if it raises nDCG@5 by at least 2% (relative) over weekly
    gain = (day["ndcg@5"] - week["ndcg@5"]) / week["ndcg@5"] if week["ndcg@5"] else math.inf
    assert report["recommended"] == ("day" if gain >= 0.02 else "week")
    assert "rule" in report


HEADER = "user_id,item_id,timestamp,weight\n"
GOOD = HEADER + "u1,i1,2026-01-01 00:00:00,1\n"  # then the bad row, on line 3
DAY = "2026-01-02 00:00:00"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD + f"u1,i2,{DAY},abc\n", "line 3, column weight: 'abc' is not a number >= 0"),
        (GOOD + f"u1,i2,{DAY},-1\n", "line 3, column weight: '-1' is not a number >= 0"),
        (GOOD + f"u1,i2,{DAY},nan\n", "line 3, column weight: 'nan' is not a number"),
        (GOOD + f"u1,i2,{DAY},\n", "line 3, column weight: empty"),
        (GOOD.replace("weight", "rating") + f"u1,i2,{DAY},5*\n", "line 3, column rating: '5*'"),
        (GOOD + "u1,i2,yesterday,1\n", "line 3, column timestamp: 'yesterday' is not an ISO 8601"),
        (GOOD + "u1,i2,2026-13-01 00:00:00,1\n", "line 3, column timestamp: '2026-13-01 00:00:00'"),
        ("u1\ti1\t1767225600\nu1\ti2\t17672256x0\n", "line 2, column timestamp: '17672256x0'"),
        (GOOD + f"u1,,{DAY},1\n", "line 3, column item_id: empty"),
        (HEADER + f",i2,{DAY},1\n", "line 2, column user_id: empty"),
        (HEADER, "no interactions (only a header)"),
        ("", "empty file"),
        ("u1,i1\nu2,i2\n", "2 column(s); want user_id,item_id,timestamp[,weight]"),
        (GOOD + f"u2,i2,{DAY},1\n", "nothing left to test"),
    ],
    ids=["weight-text", "weight-negative", "weight-nan", "weight-empty", "rating-text",
         "timestamp-text", "timestamp-month-13", "epoch-text", "item-empty", "user-empty",
         "header-only", "empty-file", "two-columns", "one-interaction-per-user"],
)  # fmt: skip
def test_a_bad_log_is_one_line_naming_where_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    log = tmp_path / "log.csv"
    log.write_text(content)
    assert main(["evaluate", "--interactions", str(log), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("python -m udfs evaluate: error: ")
    assert message in line
    if "line " in message:
        assert f"{log} line " in line


def test_a_missing_log_is_one_line_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.csv"
    assert main(["cadence", "--interactions", str(missing), "--out", str(tmp_path / "c.png")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    expected = f"{missing}: no such file (want a CSV or TSV interaction log)"
    assert line == f"python -m udfs cadence: error: {expected}"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--k", "0"], "argument --k: want a whole number >= 1, got '0'"),
        (["--k", "ten"], "argument --k: want a whole number >= 1, got 'ten'"),
        (["--ratio", "1.5"], "--ratio: want a number between 0 and 1 (exclusive), got '1.5'"),
        (["--ratio", "1"], "argument --ratio: want a number between 0 and 1"),
        (["--ratio", "0"], "argument --ratio: want a number between 0 and 1"),
        (["--ratio", "nan"], "argument --ratio: want a number between 0 and 1"),
        (["--var", "recs_top_k"], "argument --var: want KEY=VALUE, got 'recs_top_k'"),
        (["--var", "recs_top_k=[1"], "argument --var: recs_top_k's value '[1'"),
    ],
)  # fmt: skip
def test_a_bad_evaluate_flag_exits_2_naming_it(
    log_csv: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """Refused before any retrain; argparse's own errors exit 2 through SystemExit."""
    try:
        code = main(["evaluate", "--interactions", str(log_csv), *flags])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("python -m udfs evaluate: error: ")
    assert message in last


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--k", "0"], "argument --k: want a whole number >= 1"),
        (["--slots", "0"], "argument --slots: want a whole number >= 1"),
        (["--cadences", "day,fortnight"], "--cadences: want a comma-separated list of hour, day"),
        (["--backtest-days", "0"], "argument --backtest-days: want a number > 0"),
        (["--horizon-hours", "inf"], "argument --horizon-hours: want a number > 0"),
        (["--min-gain", "-0.1"], "argument --min-gain: want a number >= 0"),
    ],
)  # fmt: skip
def test_a_bad_cadence_flag_exits_2_naming_it(
    log_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    out = str(tmp_path / "cadence.png")  # were a flag let through, the chart lands here
    with pytest.raises(SystemExit) as exit:
        main(["cadence", "--interactions", str(log_csv), "--out", out, *flags])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_the_cli_prints_no_traceback(tmp_path: Path) -> None:
    """As a user runs it: stderr is the one line, the exit code 2."""
    log = tmp_path / "log.csv"
    log.write_text(GOOD + f"u1,i2,{DAY},abc\n")
    result = subprocess.run(
        [sys.executable, "-m", "udfs", "evaluate", "--interactions", str(log)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"python -m udfs evaluate: error: {log} line 3, column weight: 'abc' is not a number >= 0"
    ]


def test_read_log_takes_iso_or_epoch_timestamps_as_utc(tmp_path: Path) -> None:
    iso = tmp_path / "iso.csv"
    iso.write_text("user_id,item_id,timestamp,rating\nu1,i1,2026-01-01T02:00:00+02:00,4\n")
    assert read_log(iso) == [("u1", "i1", datetime(2026, 1, 1), 4.0)]
    epoch = tmp_path / "epoch.tsv"
    epoch.write_text("u1\ti1\t1767225600\nu2\ti2\t1767225601.5\n")
    assert read_log(epoch) == [
        ("u1", "i1", datetime(2026, 1, 1), 1.0),
        ("u2", "i2", datetime(2026, 1, 1, 0, 0, 1, 500000), 1.0),
    ]


def test_evaluate_refuses_k_and_ratio_it_cannot_score_before_retraining() -> None:
    """The library checks too (the CLI's flags never get there)."""
    with pytest.raises(InputError, match="k must be a whole number >= 1, got 0"):
        evaluate(taste_log(), k=0)
    with pytest.raises(InputError, match="ratio must be between 0 and 1"):
        evaluate(taste_log(), ratio=1.0)


def test_the_chart_without_matplotlib_fails_at_once_saying_how_to_get_it(
    log_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """matplotlib is the `plots` extra: without it, `--out` stops before the backtest retrains."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "cadence.png"
    assert main(["cadence", "--interactions", str(log_csv), "--out", str(out)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        "python -m udfs cadence: error: the chart (--out) needs matplotlib, the `plots` extra: "
        "pip install -e '.[plots]' (or leave out --out for the table alone)"
    )
    assert not out.exists()


def test_a_history_too_short_for_the_backtest_is_one_line(
    log_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cadence", "--interactions", str(log_csv), "--horizon-hours", "1000"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m udfs cadence: error: the history (2026-01-01 ")
    assert "is too short for backtest_days=7 and horizon_hours=1000" in line


def test_the_cadence_rule_moves_to_a_more_frequent_retrain_only_while_it_pays() -> None:
    from recs.cadence import recommend_cadence

    def result(cadence: str, cost: float, ndcg: float) -> dict:
        return {"cadence": cadence, "cost_seconds_per_day": cost, "ndcg@5": ndcg}

    month, week = result("month", 1, 0.30), result("week", 4, 0.33)  # +10%: pays
    day, hour = result("day", 30, 0.333), result("hour", 700, 0.40)  # +0.9%: stop here
    assert recommend_cadence([hour, day, week, month], 5, 0.02) == "week"
    assert recommend_cadence([hour, day, week, month], 5, 0.005) == "hour"  # every step pays
    assert recommend_cadence([week, month], 5, 0.5) == "month"  # +10% < 50%
    assert recommend_cadence([result("week", 4, 0.1), result("month", 1, 0.0)], 5, 0.02) == "week"

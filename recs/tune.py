"""Tune the rule set on the warehouse's own history: a small, bounded search, then the chosen
values written where dbt reads them.

The score is the temporal backtest a deployed rule set lives by: one global time cut T (the
``ratio`` of the history before it), a real dbt retrain on what happened before T in a scratch
DuckDB, and nDCG@k on what each user did after T (repeat purchases count: a rule set that
recommends items again is scored on them). The popularity and buy-again baselines of the same
split are reported beside it.

The search is coordinate-wise and bounded: starting from the project's current values, each
parameter in ``SPACE`` in turn tries its alternatives with the others fixed at the best so far,
and keeps one only if it raises nDCG@k (at most ``max_retrains`` retrains in all). Buy-again
parameters are tried only once buy-again is on.

``write`` puts the chosen values into ``dbt_project.yml`` (its ``vars:`` lines, comments kept)
and sets ``recs_tuning`` (when, the score, the baselines), which the next retrain records in
``rule_set_versions`` beside the parameters. ``persona recs cadence`` then backtests with them.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from recs import retrain
from recs.evaluate import InputError, Row, buy_again_baseline, global_cut, popularity_baseline
from recs.metrics import ranking_metrics

PROJECT = retrain.ROOT / "dbt_project.yml"
AGAIN = "recs_recommend_again"
SPACE: tuple[tuple[str, tuple[Any, ...]], ...] = (
    (AGAIN, ("off", "on")),
    ("recs_buy_again_weight", (0.5, 0.8, 0.9, 1.0)),
    ("recs_buy_again_horizon_days", (7, 30, 90)),
    ("recs_buy_again_half_life_days", (30, 60, 180)),
    ("recs_similarity", ("jaccard", "lift", "cosine")),
    ("recs_half_life_days", (7, 30, 90, 0)),
    ("recs_neighbours", (20, 50, 100)),
)
BUY_AGAIN_ONLY = {
    "recs_buy_again_weight",
    "recs_buy_again_horizon_days",
    "recs_buy_again_half_life_days",
}


def project_vars(project_file: Path = PROJECT) -> dict[str, Any]:
    """The ``vars:`` of a dbt_project.yml."""
    return dict(yaml.safe_load(project_file.read_text()).get("vars") or {})


def recommend_again(variables: dict[str, Any]) -> bool:
    """Whether a rule set trained with ``variables`` recommends any item again (the rule of
    macros/domain/recs_recommend_again.sql)."""
    chosen = variables.get(AGAIN)
    if chosen is None:
        return not variables.get("recs_remove_seen", True)
    return bool(chosen)


def again_types(rows: list[Row]) -> list[str]:
    """The event types buy-again uses on this log: purchases when there are any, else every
    interaction of a plain log."""
    types = {r[4] if len(r) > 4 and r[4] else "interaction" for r in rows}
    for wanted in ("transaction", "interaction"):
        if wanted in types:
            return [wanted]
    return sorted(types)


def _value(name: str, option: Any, types: list[str]) -> Any:
    if name == AGAIN:
        return types if option == "on" else []
    return option


def _option(name: str, value: Any) -> Any:
    if name == AGAIN:
        return "on" if value else "off"
    return value


def tune(
    rows: list[Row],
    *,
    k: int = 10,
    ratio: float = 0.8,
    max_retrains: int = 16,
    base_vars: dict[str, Any] | None = None,
    dbt_vars: dict[str, Any] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Search ``SPACE`` from ``base_vars`` (the project's vars: where the search starts) with
    ``dbt_vars`` passed to every retrain; returns the chosen values, their score, the baselines
    of the same split and every trial."""
    started = time.perf_counter()
    if max_retrains < 1:
        raise InputError(f"max_retrains must be a whole number >= 1, got {max_retrains}")
    base = dict(base_vars or {})
    types = again_types(rows)
    cut = global_cut(rows, ratio)
    train = [r for r in rows if r[2] <= cut]
    known = {r[0] for r in train}
    test = [r for r in rows if r[2] > cut and r[0] in known]
    if not train or not test:
        raise InputError(
            f"nothing to score: the time cut at {ratio:.0%} of the history ({cut}) leaves no "
            "later interaction of a user seen before it (give more history or lower the ratio)"
        )
    truth: dict[str, set[str]] = defaultdict(set)
    for user, item, *_ in test:
        truth[user].add(item)
    current = {name: base.get(name) for name, _ in SPACE}
    current[AGAIN] = types if recommend_again(base) else []
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="persona-tune-") as tmp:
        path = Path(tmp) / "tune.duckdb"
        with duckdb.connect(str(path)) as con:
            retrain.load_log(con, train)

        def score(values: dict[str, Any]) -> float:
            if progress is not None:
                progress(len(trials), max_retrains, json.dumps(values, default=str))
            variables = values | (dbt_vars or {}) | {"recs_top_k": k, "recs_training_days": None}
            variables["recs_training_end"] = cut.strftime("%Y-%m-%d %H:%M:%S")
            seconds = retrain.run(path, variables).seconds
            with duckdb.connect(str(path)) as con:
                predicted = retrain.latest_recommendations(con)
            got = ranking_metrics(truth, predicted, k)
            trials.append(
                {
                    "vars": dict(values),
                    f"ndcg@{k}": got[f"ndcg@{k}"],
                    f"recall@{k}": got[f"recall@{k}"],
                    "retrain_seconds": seconds,
                }
            )
            return got[f"ndcg@{k}"]

        best = score(current)
        for name, options in SPACE:
            if name in BUY_AGAIN_ONLY and not current[AGAIN]:
                continue
            for option in options:
                if len(trials) >= max_retrains:
                    break
                if option == _option(name, current[name]):
                    continue
                candidate = current | {name: _value(name, option, types)}
                got = score(candidate)
                if got > best:
                    best, current = got, candidate
    users = set(truth)
    baselines = {
        "popularity": ranking_metrics(truth, popularity_baseline(train, users, k), k),
        "buy_again": ranking_metrics(truth, buy_again_baseline(train, users, k), k),
    }
    chosen_trial = next(t for t in trials if t["vars"] == current)
    return {
        "chosen": current,
        f"ndcg@{k}": best,
        f"recall@{k}": chosen_trial[f"recall@{k}"],
        "baselines": {
            n: {m: b[m] for m in (f"ndcg@{k}", f"recall@{k}")} for n, b in baselines.items()
        },
        "default": trials[0],
        "trials": trials,
        "k": k,
        "cut": cut.isoformat(sep=" "),
        "train_rows": len(train),
        "test_users": len(users),
        "seconds": round(time.perf_counter() - started, 3),
    }


def write(project_file: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Set the chosen vars (and ``recs_tuning``) on their lines of ``project_file``'s ``vars:``,
    keeping every comment; returns what dbt now reads. A var missing from the file fails."""
    k = report["k"]
    tuning = {
        "tuned_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "metric": f"ndcg@{k}", "score": round(report[f"ndcg@{k}"], 6),
        "default_score": round(report["default"][f"ndcg@{k}"], 6),
        "baselines": {n: round(b[f"ndcg@{k}"], 6) for n, b in report["baselines"].items()},
        "cut": report["cut"],
    }  # fmt: skip
    values = {**report["chosen"], "recs_tuning": tuning}
    text = project_file.read_text()
    for name, value in values.items():
        line = re.compile(rf"^(  {re.escape(name)}:)[^\n]*$", re.MULTILINE)
        if not line.search(text):
            raise InputError(f"{project_file}: no `  {name}:` line under vars to write to")
        rendered = json.dumps(value, separators=(", ", ": "))  # JSON is YAML's flow style

        def value_line(m: re.Match[str], r: str = rendered) -> str:
            return f"{m.group(1)} {r}"

        text = line.sub(value_line, text, count=1)
    written = project_vars_from_text(text)
    for name, value in values.items():
        if written.get(name) != value:
            raise InputError(f"{project_file}: {name} would read back as {written.get(name)!r}")
    project_file.write_text(text)
    return {name: written[name] for name in values}


def project_vars_from_text(text: str) -> dict[str, Any]:
    return dict(yaml.safe_load(text).get("vars") or {})

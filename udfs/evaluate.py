"""Offline quality: split an interaction log per user, retrain the project's dbt models on the
training part in a scratch DuckDB, and score the held-out part (``udfs.metrics``), next to a
popularity baseline computed from the same training part."""

from __future__ import annotations

import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb

from udfs import retrain
from udfs.metrics import ranking_metrics

Row = tuple[str, str, Any, float]


def read_log(path: Path) -> list[Row]:
    """A CSV (or TSV) with user_id, item_id, timestamp[, weight] (header names, or that order
    without a header; epoch seconds or timestamps)."""
    con = duckdb.connect()
    rel = con.read_csv(str(path))
    columns = [c.lower() for c in rel.columns]
    if not {"user_id", "item_id", "timestamp"} <= set(columns):
        if len(columns) < 3:
            raise SystemExit(f"{path}: want columns user_id,item_id,timestamp[,weight]")
        names = ["user_id", "item_id", "timestamp", "weight"][: len(columns)]
        rel = con.read_csv(str(path), header=False, names=names + columns[len(names) :])
        columns = [c.lower() for c in rel.columns]
    weight = next((f"cast({c} as double)" for c in ("weight", "rating") if c in columns), "1.0")
    ts_type = dict(zip(columns, (str(t) for t in rel.types), strict=True))["timestamp"]
    ts = "to_timestamp(timestamp)" if ts_type in ("BIGINT", "INTEGER", "DOUBLE") else "timestamp"
    con.register("log_input", rel)
    return con.execute(
        f"select cast(user_id as varchar), cast(item_id as varchar), "
        f"cast({ts} as timestamp), {weight} from log_input"
    ).fetchall()


def split(rows: list[Row], how: str, ratio: float, seed: int = 42) -> tuple[list[Row], list[Row]]:
    """Per user: ``stratified`` keeps a random ``ratio`` of each user's rows for training (as
    Recommenders' python_stratified_split), ``temporal`` the earliest (python_chrono_split)."""
    by_user: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_user[row[0]].append(row)
    rng = random.Random(seed)
    train: list[Row] = []
    test: list[Row] = []
    for user in sorted(by_user):
        items = by_user[user]
        if how == "temporal":
            items = sorted(items, key=lambda r: (r[2], r[1]))
        elif how == "stratified":
            rng.shuffle(items)
        else:
            raise ValueError(f"split must be stratified or temporal, not {how}")
        cut = round(ratio * len(items))
        train += items[:cut]
        test += items[cut:]
    return train, test


def popularity_baseline(train: list[Row], users: set[str], k: int) -> dict[str, list[str]]:
    """The k items with most distinct training users that the user has not seen."""
    seen: dict[str, set[str]] = defaultdict(set)
    item_users: dict[str, set[str]] = defaultdict(set)
    for user, item, _, _ in train:
        seen[user].add(item)
        item_users[item].add(user)
    ranked = sorted(item_users, key=lambda i: (-len(item_users[i]), i))
    out = {}
    for user in users:
        out[user] = [i for i in ranked[: k + len(seen[user])] if i not in seen[user]][:k]
    return out


def evaluate(
    rows: list[Row],
    *,
    k: int = 10,
    how: str = "stratified",
    ratio: float = 0.75,
    dbt_vars: dict[str, Any] | None = None,
    warehouse: Path | None = None,
) -> dict[str, Any]:
    """Retrain on the training split with the dbt models and score the test split."""
    started = time.perf_counter()
    train, test = split(rows, how, ratio)
    truth: dict[str, set[str]] = defaultdict(set)
    for user, item, _, _ in test:
        truth[user].add(item)
    variables = {"recs_top_k": k, "recs_training_days": None} | (dbt_vars or {})
    with tempfile.TemporaryDirectory(prefix="persona-evaluate-") as tmp:
        path = warehouse or Path(tmp) / "evaluate.duckdb"
        con = duckdb.connect(str(path))
        retrain.load_log(con, train)
        con.close()
        retrain_seconds = retrain.run(path, variables).seconds
        con = duckdb.connect(str(path))
        predicted = retrain.latest_recommendations(con)
        con.close()
    baseline = popularity_baseline(train, set(truth), k)
    return {
        **ranking_metrics(truth, predicted, k),
        "baseline": ranking_metrics(truth, baseline, k),
        "rows": len(rows),
        "train_rows": len(train),
        "test_rows": len(test),
        "users": len(truth),
        "k": k,
        "split": how,
        "ratio": ratio,
        "retrain_seconds": round(retrain_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }

"""Offline quality: split an interaction log, retrain the project's dbt models on the training
part in a scratch DuckDB, and score the held-out part (``recs.metrics``), next to two baselines
computed from the same training part: popularity (the most-used items the user has not seen)
and buy-again (the user's own most frequent past items). A rule set that loses to either on a
catalog is worse than doing nothing clever there, and the report says so in the same run.

Splits: ``stratified`` (a random share of each user's rows), ``temporal`` (each user's earliest
share) and, always beside ``temporal``, ``global``: one time cut T for everyone (train before
T, test after, users with history before T), which is how a deployed model lives."""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from recs import retrain
from recs.metrics import ranking_metrics

# user_id, item_id, timestamp, weight[, event_type]
Row = tuple[Any, ...]

COLUMNS = ("user_id", "item_id", "timestamp", "weight")
TIMESTAMPS = "an ISO 8601 timestamp such as 2026-01-31 12:00:00, or epoch seconds"


class InputError(ValueError):
    """An interaction log or a parameter that cannot be evaluated. The message names the file,
    line and column (or the parameter) and says what would be accepted; the CLI prints it as
    one line and exits 2, like a bad flag."""


def read_log(path: Path) -> list[Row]:
    """A CSV (or TSV) with user_id, item_id, timestamp[, weight] (header names, or that order
    without a header; weight, or rating, defaults to 1; an ``event_type`` column, as
    ``export-log`` writes, is kept). DuckDB sniffs the dialect and header;
    the values are read as text and checked here, so a bad one is reported by line and column
    rather than as a failed cast somewhere in the file. Timestamps are ISO 8601 (an offset is
    converted to UTC) or epoch seconds (UTC); weights are finite numbers >= 0."""
    if not path.is_file():
        raise InputError(f"{path}: no such file (want a CSV or TSV interaction log)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (want a CSV or TSV interaction log)")
    con = duckdb.connect()
    try:
        columns = [c.lower() for c in con.read_csv(str(path)).columns]
        header = {"user_id", "item_id", "timestamp"} <= set(columns)
        if not header:
            if len(columns) < 3:
                raise InputError(
                    f"{path}: {len(columns)} column(s); want user_id,item_id,timestamp[,weight] "
                    "(a header with those names, or that order without one)"
                )
            columns = [*COLUMNS[: len(columns)], *columns[len(COLUMNS) :]]
        text = con.read_csv(str(path), header=header, names=columns, all_varchar=True).fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{path}: not a readable CSV or TSV ({str(exc).splitlines()[0]})") from exc
    if not text:
        raise InputError(f"{path}: no interactions" + (" (only a header)" if header else ""))
    at = {name: columns.index(name) for name in COLUMNS[:3]}
    weight_at = next((columns.index(c) for c in ("weight", "rating") if c in columns), None)
    type_at = columns.index("event_type") if "event_type" in columns else None
    first_line = 2 if header else 1  # a line per row: a log's fields hold no line breaks
    epoch = _is_number(text[0][at["timestamp"]])
    rows: list[Row] = []
    for line, values in enumerate(text, first_line):
        user, item, ts = (values[at[name]] for name in COLUMNS[:3])
        where = f"{path} line {line}, column"
        for name, value in (("user_id", user), ("item_id", item), ("timestamp", ts)):
            if value is None:
                raise InputError(f"{where} {name}: empty; every row needs one")
        weight = (
            1.0
            if weight_at is None
            else _weight(values[weight_at], f"{where} {columns[weight_at]}")
        )
        row = (user, item, _timestamp(ts, epoch, where), weight)
        rows.append(row if type_at is None else (*row, values[type_at]))
    return rows


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def _timestamp(text: str, epoch: bool, where: str) -> datetime:
    try:
        if epoch:
            return datetime.fromtimestamp(float(text), UTC).replace(tzinfo=None)
        value = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        kind = "epoch seconds (as the first row's is)" if epoch else TIMESTAMPS
        raise InputError(f"{where} timestamp: {text!r} is not {kind}") from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _weight(text: str | None, where: str) -> float:
    if text is None:
        raise InputError(f"{where}: empty; want a number >= 0 (or no weight column)")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: {text!r} is not a number >= 0")
    return value


def global_cut(rows: list[Row], ratio: float) -> datetime:
    """The time T before which ``ratio`` of the interactions happened."""
    times = sorted(r[2] for r in rows)
    cut: datetime = times[min(max(round(ratio * len(times)) - 1, 0), len(times) - 1)]
    return cut


def split(rows: list[Row], how: str, ratio: float, seed: int = 42) -> tuple[list[Row], list[Row]]:
    """Per user: ``stratified`` keeps a random ``ratio`` of each user's rows for training (as
    Recommenders' python_stratified_split), ``temporal`` the earliest (python_chrono_split).
    ``global``: rows at or before ``global_cut`` train; later rows of users who have training
    rows test (a user first seen after T is nobody's to personalise)."""
    if how == "global":
        cut_at = global_cut(rows, ratio)
        before = [r for r in rows if r[2] <= cut_at]
        known = {r[0] for r in before}
        return before, [r for r in rows if r[2] > cut_at and r[0] in known]
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
    for user, item, *_ in train:
        seen[user].add(item)
        item_users[item].add(user)
    ranked = sorted(item_users, key=lambda i: (-len(item_users[i]), i))
    out = {}
    for user in users:
        out[user] = [i for i in ranked[: k + len(seen[user])] if i not in seen[user]][:k]
    return out


def buy_again_baseline(train: list[Row], users: set[str], k: int) -> dict[str, list[str]]:
    """The user's own k most frequent training items (most interactions, then latest, then id):
    what a shop that only says "buy it again" would show. Users without history get none."""
    counts: dict[str, dict[str, list[Any]]] = defaultdict(dict)  # item → [times, latest]
    for user, item, at, *_ in train:
        if user in users:
            seen = counts[user].setdefault(item, [0, at])
            seen[0] += 1
            seen[1] = max(seen[1], at)
    out: dict[str, list[str]] = {}
    for user in users:
        mine = counts.get(user, {})
        out[user] = sorted(mine, key=lambda i: (-mine[i][0], -mine[i][1].timestamp(), i))[:k]
    return out


def score_split(
    train: list[Row], test: list[Row], k: int, variables: dict[str, Any], path: Path
) -> dict[str, Any]:
    """Retrain on ``train`` into ``path`` and score the rule set and both baselines on ``test``."""
    truth: dict[str, set[str]] = defaultdict(set)
    for user, item, *_ in test:
        truth[user].add(item)
    con = duckdb.connect(str(path))
    retrain.load_log(con, train)
    con.close()
    retrain_seconds = retrain.run(path, variables).seconds
    con = duckdb.connect(str(path))
    predicted = retrain.latest_recommendations(con)
    con.close()
    baselines = {
        "popularity": ranking_metrics(truth, popularity_baseline(train, set(truth), k), k),
        "buy_again": ranking_metrics(truth, buy_again_baseline(train, set(truth), k), k),
    }
    return {
        **ranking_metrics(truth, predicted, k),
        "baseline": baselines["popularity"],  # the key of earlier reports
        "baselines": baselines,
        "train_rows": len(train),
        "test_rows": len(test),
        "users": len(truth),
        "retrain_seconds": round(retrain_seconds, 3),
    }


def evaluate(
    rows: list[Row],
    *,
    k: int = 10,
    how: str = "stratified",
    ratio: float = 0.75,
    dbt_vars: dict[str, Any] | None = None,
    warehouse: Path | None = None,
) -> dict[str, Any]:
    """Retrain on the training split with the dbt models and score the test split. The report's
    top level is ``how``'s split; ``splits`` holds every split run (``temporal`` adds
    ``global``, the same ratio as one time cut)."""
    started = time.perf_counter()
    if k < 1:
        raise InputError(f"k must be a whole number >= 1, got {k}")
    if not 0 < ratio < 1:
        raise InputError(f"ratio must be between 0 and 1 (the training share), got {ratio}")
    hows = [how, "global"] if how == "temporal" else [how]
    parts = {h: split(rows, h, ratio) for h in hows}
    for h, (train, test) in parts.items():
        if not train or not test:
            part, fix = ("test", "lower") if train else ("train on", "raise")
            raise InputError(
                f"nothing left to {part}: with ratio {ratio} the {h} split put every one of "
                f"{len(rows):,} interactions on one side ({fix} the ratio, or give users more "
                "interactions)"
            )
    variables = {"recs_top_k": k, "recs_training_days": None} | (dbt_vars or {})
    splits: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="persona-evaluate-") as tmp:
        for h, (train, test) in parts.items():
            path = warehouse if warehouse and h == how else Path(tmp) / f"evaluate-{h}.duckdb"
            splits[h] = score_split(train, test, k, variables, path)
            if h == "global":
                splits[h]["cut"] = global_cut(rows, ratio).isoformat(sep=" ")
    return {
        **splits[how],
        "splits": splits,
        "rows": len(rows),
        "k": k,
        "split": how,
        "ratio": ratio,
        "seconds": round(time.perf_counter() - started, 3),
    }

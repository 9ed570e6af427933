"""How often to retrain: a backtest on the interaction history.

At ``slots`` evaluation times spread over the last ``backtest_days`` of the history, each
cadence (hour, day, week, month) serves the rule set it would have trained at its latest
boundary at or before that time (training end = the boundary). Quality is nDCG@k (and
precision@k) on the next ``horizon_hours`` of interactions with items the user had not touched
before (or with any item, when the rule set recommends items again: buy-again). Cost is what
the cadence spends per day: mean measured retrain seconds times retrains per day. Every
retrain is the project's dbt retrain on a scratch DuckDB (``recs.retrain``).

The recommendation rule: start from the least frequent cadence and move to the next more
frequent one only while that raises nDCG@k by at least ``min_gain`` (relative, default 2%);
the first step that gains less is where a higher frequency stops paying.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from recs import retrain
from recs.evaluate import InputError, Row
from recs.metrics import ranking_metrics

PERIODS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
}

# The stitching and weights of models/recommendations/interactions.sql, as a flat log; the
# models read it back through recs_interactions_from: interaction_log.
EVENTS_LOG_QUERY = """
select
    coalesce(m.user_id, p.domain_userid) as user_id,
    p.product_id as item_id,
    p.derived_tstamp as interacted_at,
    cast(case p.ecommerce_action {weights} else 0 end as double) as weight,
    p.ecommerce_action as event_type
from {schema}.product_events as p
left join {schema}.identity_map as m
    on m.device_id_type = 'domain_userid' and m.device_id = p.domain_userid
where not p.is_bot and p.product_id is not null
"""


def events_log(
    con: duckdb.DuckDBPyConnection,
    schema: str = "derived",
    weights: dict[str, float] | None = None,
) -> list[Row]:
    """The event history of a built warehouse as an interaction log (with each event's type)."""
    weights = weights or {"product_view": 1, "add_to_cart": 3, "transaction": 5}
    cases = " ".join(f"when '{a}' then {w}" for a, w in weights.items())
    return con.execute(EVENTS_LOG_QUERY.format(weights=cases, schema=schema)).fetchall()


def floor(ts: datetime, cadence: str, origin: datetime) -> datetime:
    """The latest retrain boundary of ``cadence`` at or before ``ts``."""
    if cadence == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if cadence == "day":
        return day
    period = PERIODS[cadence]
    return origin + ((day - origin) // period) * period


def backtest(
    rows: list[Row],
    *,
    cadences: tuple[str, ...] = ("hour", "day", "week", "month"),
    backtest_days: float = 7,
    slots: int = 8,
    horizon_hours: float = 24,
    k: int = 10,
    min_gain: float = 0.02,
    dbt_vars: dict[str, Any] | None = None,
    progress: Callable[[int, int, datetime], None] | None = None,
    repeats: bool = False,
) -> dict[str, Any]:
    """The backtest's report (see the module's docstring). ``repeats``: the rule set may
    recommend items again (``recs_recommend_again``), so a user's next interactions with items
    seen before count too. ``progress(done, total, boundary)``
    is called before each retrain (``done`` of ``total`` finished, the next one training up to
    ``boundary``) and once after the last (``boundary`` then the last one's)."""
    started = time.perf_counter()
    rows = sorted(rows, key=lambda r: r[2])
    first, last = rows[0][2], rows[-1][2]
    horizon = timedelta(hours=horizon_hours)
    start = max(first + timedelta(days=1), last - timedelta(days=backtest_days))
    end = last - horizon
    if end <= start:
        raise InputError(
            f"the history ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}) is too short for "
            f"backtest_days={backtest_days:g} and horizon_hours={horizon_hours:g}: the first "
            "slot needs a day of history before it and the last a horizon after it"
        )
    step = (end - start) / max(slots - 1, 1)
    times = [start + i * step for i in range(slots)]
    origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
    plan = {c: [floor(t, c, origin) for t in times] for c in cadences}
    trained_at = sorted({b for bounds in plan.values() for b in bounds})
    recs: dict[datetime, dict[str, list[str]]] = {}
    seconds: dict[datetime, float] = {}
    variables = {"recs_top_k": k} | (dbt_vars or {})
    with tempfile.TemporaryDirectory(prefix="persona-cadence-") as tmp:
        path = Path(tmp) / "cadence.duckdb"
        con = duckdb.connect(str(path))
        retrain.load_log(con, rows)
        con.close()
        for done, boundary in enumerate(trained_at):
            if progress is not None:
                progress(done, len(trained_at), boundary)
            end_var = boundary.strftime("%Y-%m-%d %H:%M:%S")
            trained = retrain.run(path, variables | {"recs_training_end": end_var})
            seconds[boundary] = trained.seconds
            con = duckdb.connect(str(path))
            recs[boundary] = retrain.latest_recommendations(con)
            con.close()
        if progress is not None:
            progress(len(trained_at), len(trained_at), trained_at[-1])
    results = []
    for cadence in cadences:
        ndcg, precision = [], []
        for t, boundary in zip(times, plan[cadence], strict=True):
            seen: dict[str, set[str]] = defaultdict(set)
            truth: dict[str, set[str]] = defaultdict(set)
            for user, item, ts, *_ in rows:
                if ts <= boundary:
                    seen[user].add(item)
                elif t < ts <= t + horizon and (repeats or item not in seen[user]):
                    truth[user].add(item)
            if not repeats:
                truth = {u: items - seen[u] for u, items in truth.items() if items - seen[u]}
            scores = ranking_metrics(truth, recs[boundary], k)
            ndcg.append(scores[f"ndcg@{k}"])
            precision.append(scores[f"precision@{k}"])
        per_retrain = sum(seconds[b] for b in set(plan[cadence])) / len(set(plan[cadence]))
        per_day = per_retrain * (timedelta(days=1) / PERIODS[cadence])
        results.append(
            {
                "cadence": cadence,
                f"ndcg@{k}": sum(ndcg) / len(ndcg),
                f"precision@{k}": sum(precision) / len(precision),
                "retrain_seconds": per_retrain,
                "cost_seconds_per_day": per_day,
            }
        )
    return {
        "results": results,
        "recommended": recommend_cadence(results, k, min_gain),
        "rule": f"the least frequent cadence whose next more frequent one raises nDCG@{k} "
        f"by less than {min_gain:.0%} (relative)",
        "slots": [t.isoformat() for t in times],
        "retrains": len(trained_at),
        "seconds": round(time.perf_counter() - started, 3),
    }


def recommend_cadence(results: list[dict[str, Any]], k: int, min_gain: float) -> str:
    ordered = sorted(results, key=lambda r: r["cost_seconds_per_day"])  # rarest first
    chosen = ordered[0]
    for candidate in ordered[1:]:
        base = chosen[f"ndcg@{k}"]
        gain = (candidate[f"ndcg@{k}"] - base) / base if base else float("inf")
        if gain < min_gain:
            break
        chosen = candidate
    cadence: str = chosen["cadence"]
    return cadence


PLOTS_MISSING = (
    "the chart (--out) needs matplotlib, the `plots` extra: pip install -e '.[plots]' "
    "(or leave out --out for the table alone)"
)


def require_plots() -> None:
    """Fail before a long backtest, not after it, when the chart cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(PLOTS_MISSING) from None


def plot(report: dict[str, Any], k: int, out: Path) -> Path:
    """Quality against cost per day, one point per cadence (needs the ``plots`` extra)."""
    require_plots()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = sorted(report["results"], key=lambda r: r["cost_seconds_per_day"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["cost_seconds_per_day"] for r in results]
    ys = [r[f"ndcg@{k}"] for r in results]
    ax.plot(xs, ys, marker="o")
    for r, x, y in zip(results, xs, ys, strict=True):
        label = r["cadence"] + (" (recommended)" if r["cadence"] == report["recommended"] else "")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6))
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.12)  # room for the labels
    ax.set_xlabel("training cost, seconds per day (log scale)")
    ax.set_ylabel(f"next-period nDCG@{k}")
    ax.set_title("Retraining cadence: quality of the next period vs cost")
    ax.grid(True, alpha=0.3)
    fig.text(0.01, 0.01, "rule: " + report["rule"], fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out

"""Rule sets: the versions trained, which one is served, how good they are against a
popularity baseline, and what retraining more often would buy."""

from __future__ import annotations

import json
import os
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import style, ui
from dashboard.source import warehouse_path

st.title("Rule sets")
st.caption(
    "Recommendation rule sets are rebuilt on a cadence (`dbt build --selector "
    "retrain`), one version per run; the newest is served unless "
    "`recs_serving_version` pins another."
)

VERSIONS = """
select
    rule_set_version,
    trained_at,
    training_start,
    training_end,
    similarity,
    interactions_rows,
    user_count,
    item_count,
    item_similarity_rows,
    user_recommendations_rows
from derived.rule_set_versions
order by trained_at
"""
SERVED = "select distinct rule_set_version from derived.current_popular_items"
EVALUATION = "recs-evaluation.json"
CADENCE = "recs-cadence.json"


def _reports_dir() -> str:
    return os.environ.get("PERSONA_DASHBOARD_REPORTS") or str(warehouse_path().parent)


def _report(name: str) -> tuple[str, dict[str, Any] | None]:
    path = os.path.join(_reports_dir(), name)
    try:
        with open(path) as f:
            return path, json.load(f)
    except FileNotFoundError:
        return path, None
    except (OSError, ValueError) as exc:
        st.warning(f"{path} is not a report this page can read: {exc}")
        return path, None


with ui.guard("Rule sets"):
    source = ui.current_source()
    versions = ui.query(source, VERSIONS)
    served = ui.query(source, SERVED)["rule_set_version"].tolist() if not versions.empty else []
    cols = st.columns([1, 2, 1])
    cols[0].metric("Versions kept", style.count(len(versions)))
    cols[1].metric("Served", served[0] if len(served) == 1 else ", ".join(served) or "none")
    cols[2].metric(
        "Newest trained", style.ago(versions["trained_at"].max()) if not versions.empty else "never"
    )
    if versions.empty:
        st.info("No rule set trained yet: run `dbt build --selector retrain` (`make demo` does).")
    else:
        versions["served"] = versions["rule_set_version"].isin(served)
        long = versions.melt(
            ["rule_set_version", "trained_at", "served"],
            ["user_count", "item_count", "item_similarity_rows"],
            "measure",
            "rows",
        )
        long["measure"] = long["measure"].map(
            {"user_count": "users", "item_count": "items", "item_similarity_rows": "item pairs"}
        )
        figure = (
            alt.Chart(long)
            .mark_line(point=alt.OverlayMarkDef(size=80))
            .encode(
                x=alt.X("trained_at:T", title="trained at", axis=alt.Axis(format="%Y-%m-%d %H:%M")),
                y=alt.Y("rows:Q", title=None, axis=alt.Axis(format=",d")),
                color=alt.Color("measure:N", title=None),
                shape=alt.Shape("served:N", title="served"),
                tooltip=[
                    "rule_set_version:N",
                    "measure:N",
                    alt.Tooltip("rows:Q", format=",d"),
                    "served:N",
                ],
            )
            .properties(height=240)
        )
        ui.chart(
            "Versions over time",
            "What each retrain learnt from: users and items with "
            "interactions, and item pairs kept as neighbours.",
            VERSIONS,
            figure,
        )
        ui.table(
            "Versions",
            "Every version kept (`recs_versions_kept`), newest last.",
            f"{VERSIONS}\n-- served\n{SERVED}",
            versions,
            empty="",
            column_config={
                c: ui.count_column(c.replace("_", " "))
                for c in (
                    "interactions_rows",
                    "user_count",
                    "item_count",
                    "item_similarity_rows",
                    "user_recommendations_rows",
                )
            },
        )

    path, report = _report(EVALUATION)
    ui.heading(
        "Evaluation against a popularity baseline",
        "Ranking quality on held-out interactions: the rule set next to recommending "
        "the most popular items, trained on the same data.",
    )
    if report is None:
        st.info(
            f"No evaluation report at {path}: run `persona recs export-log --out log.csv` "
            f"then `persona recs evaluate --interactions log.csv --json > {path}`."
        )
    else:
        k = report.get("k", 10)
        metrics = [
            m
            for m in ("map", f"map@{k}", f"ndcg@{k}", f"precision@{k}", f"recall@{k}")
            if m in report
        ]
        frame = pd.DataFrame(
            [(m, "rule set", report[m]) for m in metrics]
            + [(m, "popularity", report["baseline"][m]) for m in metrics],
            columns=["metric", "model", "value"],
        )
        figure = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("metric:N", title=None, sort=metrics),
                xOffset=alt.XOffset("model:N", sort=["rule set", "popularity"]),
                y=alt.Y("value:Q", title=None, axis=alt.Axis(format=".3f")),
                color=alt.Color(
                    "model:N",
                    title=None,
                    scale=alt.Scale(
                        domain=["rule set", "popularity"], range=[style.GOOD, style.NEUTRAL]
                    ),
                ),
                tooltip=["metric:N", "model:N", alt.Tooltip("value:Q", format=".4f")],
            )
            .properties(height=240)
        )
        st.altair_chart(figure, width="stretch")
        st.caption(
            f"{style.count(report.get('rows'))} interactions, "
            f"{style.count(report.get('users'))} test users, k = {k}."
        )
    ui.show_source(
        f"`{path}`, written by `persona recs evaluate --interactions LOG.csv "
        "--json` (`persona recs export-log --out LOG.csv` exports the warehouse's "
        "interactions); PERSONA_DASHBOARD_REPORTS names another folder."
    )

    path, report = _report(CADENCE)
    ui.heading(
        "Retraining cadence",
        "Next-period quality against training cost per day, one point per cadence backtested.",
    )
    if report is None:
        st.info(f"No cadence report at {path}: run `persona recs cadence --json > {path}`.")
    else:
        results = pd.DataFrame(report["results"])
        ndcg = next(c for c in results.columns if c.startswith("ndcg@"))
        results["recommended"] = results["cadence"] == report.get("recommended")
        base = alt.Chart(results).encode(
            x=alt.X(
                "cost_seconds_per_day:Q",
                title="training cost, seconds per day",
                scale=alt.Scale(type="log"),
            ),
            y=alt.Y(f"{ndcg}:Q", title=f"next-period {ndcg}", scale=alt.Scale(zero=False)),
        )
        figure = (
            base.mark_line(color=style.GOOD)
            + base.mark_point(filled=True, size=90).encode(
                color=alt.Color(
                    "recommended:N",
                    title="recommended",
                    scale=alt.Scale(domain=[True, False], range=[style.BAD, style.GOOD]),
                ),
                tooltip=[
                    "cadence:N",
                    alt.Tooltip(f"{ndcg}:Q", format=".4f"),
                    alt.Tooltip("retrain_seconds:Q", format=",.2f"),
                    alt.Tooltip("cost_seconds_per_day:Q", format=",.1f"),
                ],
            )
            + base.mark_text(dx=8, dy=-8, align="left").encode(text="cadence:N")
        ).properties(height=260)
        st.altair_chart(figure, width="stretch")
        st.caption(f"Recommended: {report.get('recommended')} ({report.get('rule')}).")
    ui.show_source(
        f"`{path}`, written by `persona recs cadence --json` (a backtest of "
        "retraining cadences on the warehouse's interactions)."
    )

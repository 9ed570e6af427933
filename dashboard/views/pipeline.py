"""Pipeline: what loaded, what failed and why, and how fresh each layer is."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import style, ui

st.title("Pipeline")
st.caption(
    "Events that loaded and events that failed, how long loading takes, and how far "
    "behind the loader each layer of models is."
)

WINDOWS = {
    "per hour, last 7 days": ("hour", timedelta(days=7)),
    "per minute, last 3 hours": ("minute", timedelta(hours=3)),
}

TOTALS = """
select
    (select sum(events) from derived.pipeline_minutely) as good_events,
    (select sum(failed_events) from derived.failed_events_hourly) as failed_events,
    (select max(max_load_tstamp) from derived.pipeline_minutely) as events_loaded_to,
    (select max(max_load_tstamp) from derived.sessions_daily) as sessions_built_to,
    (select max(max_load_tstamp) from derived.user_daily) as profiles_built_to,
    (select max(bucket_start) from derived.pipeline_minutely) as latest_minute,
    (select max(max_failed_at) from derived.failed_events_hourly) as latest_failure
"""
GOOD = """
select date_trunc('{grain}', bucket_start) as bucket_start, sum(events) as events
from derived.pipeline_minutely
where bucket_start >= ?
group by 1
order by 1
"""
FAILED_HOURLY = """
select bucket_start, failed_events as events
from derived.failed_events_hourly
where bucket_start >= ?
order by 1
"""
FAILED_MINUTELY = """
select date_trunc('minute', failed_at) as bucket_start, count(*) as events
from atomic.failed_events
where failed_at >= ?
group by 1
order by 1
"""
LATENCY = """
select
    date_trunc('{grain}', bucket_start) as bucket_start,
    sum(load_latency_s_sum) / sum(events) as mean_latency_s,
    max(load_latency_s_max) as max_latency_s
from derived.pipeline_minutely
where bucket_start >= ?
group by 1
order by 1
"""
BY_TYPE = """
select error_type, count(*) as failed_events, max(failed_at) as last_seen
from atomic.failed_events
group by error_type
order by failed_events desc
"""
EXAMPLES = """
select error_type, failed_at, source, message, left(raw, 300) as raw
from (
    select
        *,
        row_number() over (partition by error_type order by failed_at desc) as newest
    from atomic.failed_events
) as ranked
where newest <= 3
order by error_type, failed_at desc
"""


def _series(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    return frame.assign(kind=kind)[["bucket_start", "kind", "events"]]


with ui.guard("Pipeline"):
    source = ui.current_source()
    totals = ui.query(source, TOTALS).iloc[0]
    if pd.isna(totals["latest_minute"]) and pd.isna(totals["latest_failure"]):
        st.info(
            "No events yet: load some with `persona load` (or run `make demo`), then "
            "`dbt build --selector realtime`."
        )
        st.stop()
    good, failed = style.number(totals["good_events"]), style.number(totals["failed_events"])
    cols = st.columns(5)
    cols[0].metric("Events in the warehouse", style.count(good))
    cols[1].metric("Failed events", style.count(failed))
    cols[2].metric("Failure rate", style.percent(failed, good + failed, 2))
    cols[3].metric(
        "Newest event loaded",
        style.ago(totals["events_loaded_to"]),
        help="now - the newest load_tstamp in `events`",
    )
    cols[4].metric(
        "Profiles built up to",
        style.ago(totals["profiles_built_to"]),
        help="now - the newest load_tstamp the profiles' inputs include",
    )

    label = st.radio("Series", list(WINDOWS), horizontal=True, label_visibility="collapsed")
    grain, span = WINDOWS[label]
    # the newest event anchors the window (failures are stamped by the loader's clock, which is
    # later than the collector's for a backfill)
    latest = totals["latest_minute"]
    if pd.isna(latest):
        latest = totals["latest_failure"]
    since = (pd.Timestamp(latest) - span).to_pydatetime()
    good_sql = GOOD.format(grain=grain)
    failed_sql = FAILED_HOURLY if grain == "hour" else FAILED_MINUTELY
    series = pd.concat(
        [
            _series(ui.query(source, good_sql, [since]), "good"),
            _series(ui.query(source, failed_sql, [since]), "failed"),
        ]
    )
    figure = None
    if not series.empty:
        figure = (
            alt.Chart(series)
            .mark_bar()
            .encode(
                x=alt.X("bucket_start:T", title=None),
                y=alt.Y("events:Q", title=f"events per {grain}", axis=alt.Axis(format=",d")),
                color=alt.Color(
                    "kind:N",
                    title=None,
                    scale=alt.Scale(domain=["good", "failed"], range=[style.GOOD, style.BAD]),
                ),
                tooltip=[
                    alt.Tooltip("bucket_start:T", title=grain),
                    "kind:N",
                    alt.Tooltip("events:Q", format=",d"),
                ],
            )
            .properties(height=260)
        )
    ui.chart(
        f"Good and failed events per {grain}",
        f"Events loaded into `events` by collector time, and inputs that failed by the "
        f"loader's clock, in the {label.split(', ')[1]} up to the newest event.",
        f"{good_sql}\n-- failed\n{failed_sql}",
        figure,
        empty="No events in this window.",
    )

    latency_sql = LATENCY.format(grain=grain)
    latency = ui.query(source, latency_sql, [since])
    figure = None
    if not latency.empty:
        long = latency.melt("bucket_start", var_name="measure", value_name="seconds")
        long["measure"] = long["measure"].map({"mean_latency_s": "mean", "max_latency_s": "max"})
        figure = (
            alt.Chart(long)
            .mark_line(point=grain == "hour")
            .encode(
                x=alt.X("bucket_start:T", title=None),
                y=alt.Y(
                    "seconds:Q", title="collector → warehouse, s", axis=alt.Axis(format=",.0f")
                ),
                color=alt.Color(
                    "measure:N",
                    title=None,
                    scale=alt.Scale(domain=["mean", "max"], range=[style.GOOD, style.NEUTRAL]),
                ),
                tooltip=[
                    alt.Tooltip("bucket_start:T", title=grain),
                    "measure:N",
                    alt.Tooltip("seconds:Q", format=",.1f"),
                ],
            )
            .properties(height=220)
        )
    ui.chart(
        "Load latency",
        "Seconds from the collector receiving an event to the warehouse "
        "storing it (load_tstamp - collector_tstamp): mean and worst per "
        f"{grain}. Backfilled history shows as days.",
        latency_sql,
        figure,
    )

    freshness = pd.DataFrame(
        [
            ("events (loaded)", totals["events_loaded_to"]),
            ("sessions", totals["sessions_built_to"]),
            ("profiles, segments", totals["profiles_built_to"]),
        ],
        columns=["layer", "includes loads up to"],
    )
    freshness["behind the loader"] = [
        style.duration((totals["events_loaded_to"] - t).total_seconds())
        if pd.notna(t)
        else style.NOTHING
        for t in freshness["includes loads up to"]
    ]
    ui.table(
        "Freshness, layer by layer",
        "How far each layer of models is behind the newest "
        "event loaded: a growing gap means the refresh is not keeping up.",
        TOTALS,
        freshness,
        empty="",
    )

    by_type = ui.query(source, BY_TYPE)
    figure = None
    if not by_type.empty:
        figure = (
            alt.Chart(by_type)
            .mark_bar(color=style.BAD)
            .encode(
                x=alt.X("failed_events:Q", title="failed events", axis=alt.Axis(format=",d")),
                y=alt.Y("error_type:N", title=None, sort="-x"),
                tooltip=[
                    "error_type:N",
                    alt.Tooltip("failed_events:Q", format=",d"),
                    alt.Tooltip("last_seen:T", title="last seen"),
                ],
            )
            .properties(height=max(80, 28 * len(by_type)))
        )
    ui.chart(
        "Failed events by error type",
        "Inputs the loader could not load, kept in "
        "atomic.failed_events with the raw input and a reason (docs/failed-events.md).",
        BY_TYPE,
        figure,
        empty="No failed events: every input so far loaded.",
    )
    if not by_type.empty:
        ui.table(
            "Examples",
            "The newest three failures of each type, raw input cut to 300 characters.",
            EXAMPLES,
            ui.query(source, EXAMPLES),
            empty="",
        )

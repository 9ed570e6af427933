"""Anomalies: each detector's series with its flagged points, and the bots."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import style, ui

st.title("Anomalies")
st.caption(
    "Three detectors (models/anomalies): traffic per app and event type against the "
    "same hour in previous weeks, failed events against their usual rate, and devices "
    "that behave like bots. Scores are robust z-scores; a point is flagged at its "
    "detector's threshold."
)

WINDOW_DAYS = 7  # var anomalies_window_days: what `anomalies` scores and reports
AS_OF = """
select
    (select max(as_of) from derived.anomalies) as as_of,
    (select max(bucket_start) from derived.traffic_hourly) as latest_hour
"""
SUMMARY = """
select detector, severity, count(*) as flagged
from derived.anomalies
group by detector, severity
order by detector, severity
"""
SUBJECTS = """
select app_id || '/' || event_name as subject, sum(events) as events
from derived.traffic_hourly
where bucket_start >= ?
group by app_id, event_name
order by events desc
"""
TRAFFIC = """
select bucket_start, events - bot_events as events
from derived.traffic_hourly
where app_id || '/' || event_name = ? and bucket_start >= ?
order by bucket_start
"""
FAILED = """
select bucket_start, failed_events as events
from derived.failed_events_hourly
where bucket_start >= ?
order by bucket_start
"""
FLAGS = """
select bucket_start, observed, expected, score, threshold, severity, reason
from derived.anomalies
where detector = ? and subject = ?
order by bucket_start
"""
BOTS_DAILY = """
select
    event_date,
    count(*) as devices,
    sum(case when is_bot then 1 else 0 end) as known_bots
from derived.device_behaviour_daily
where event_date >= ?
group by event_date
order by event_date
"""
BOTS = """
select
    subject as device,
    cast(bucket_start as date) as day,
    observed as events,
    severity,
    is_known_bot,
    reason
from derived.anomalies
where detector = 'behaviour'
order by bucket_start desc, observed desc
"""


def _series(
    title: str, what: str, sql: str, series: pd.DataFrame, flags: pd.DataFrame, unit: str
) -> None:
    if series.empty:
        ui.chart(title, what, sql, None, empty=f"No {unit} in the window.")
        return
    line = (
        alt.Chart(series)
        .mark_line(color=style.GOOD, point=len(series) < 48)
        .encode(
            x=alt.X("bucket_start:T", title=None),
            y=alt.Y(
                "events:Q", title=f"{unit} per hour", axis=alt.Axis(format=",d", tickMinStep=1)
            ),
            tooltip=[
                alt.Tooltip("bucket_start:T", title="hour", format="%Y-%m-%d %H:00"),
                alt.Tooltip("events:Q", format=",d"),
            ],
        )
    )
    figure = line
    if not flags.empty:
        points = (
            alt.Chart(flags)
            .mark_point(color=style.FLAG, filled=True, size=90)
            .encode(
                x="bucket_start:T",
                y="observed:Q",
                tooltip=[
                    alt.Tooltip("bucket_start:T", title="hour", format="%Y-%m-%d %H:00"),
                    alt.Tooltip("observed:Q", format=",d"),
                    alt.Tooltip("expected:Q", format=",.1f"),
                    alt.Tooltip("score:Q", title="z", format=".1f"),
                    alt.Tooltip("threshold:Q", title="flags at |z| ≥", format=".1f"),
                    "severity:N",
                    "reason:N",
                ],
            )
        )
        expected = (
            alt.Chart(flags)
            .mark_tick(color=style.NEUTRAL, thickness=3, size=18)
            .encode(x="bucket_start:T", y="expected:Q")
        )
        figure = line + expected + points
    ui.chart(title, what, sql, figure.properties(height=240))


with ui.guard("Anomalies"):
    source = ui.current_source()
    bounds = ui.query(source, AS_OF).iloc[0]
    as_of = bounds["as_of"] if pd.notna(bounds["as_of"]) else bounds["latest_hour"]
    if pd.isna(as_of):
        st.info("No events scored yet: run `make demo` (or `dbt build --selector realtime`).")
        st.stop()
    since = (pd.Timestamp(as_of) - pd.Timedelta(days=WINDOW_DAYS)).to_pydatetime()
    summary = ui.query(source, SUMMARY)
    flagged = summary.groupby("detector")["flagged"].sum()
    cols = st.columns(3)
    for col, (detector, label) in zip(
        cols,
        [
            ("traffic", "Traffic"),
            ("data_quality", "Data quality"),
            ("behaviour", "Bot-like devices"),
        ],
        strict=True,
    ):
        col.metric(f"{label}: flagged", style.count(flagged.get(detector, 0)))
    st.caption(f"The {WINDOW_DAYS} days up to {pd.Timestamp(as_of):%Y-%m-%d %H:%M} UTC.")
    if summary.empty:
        st.success(
            f"No anomalies in the {WINDOW_DAYS} days up to {pd.Timestamp(as_of):%Y-%m-%d %H:%M}."
        )

    subjects = ui.query(source, SUBJECTS, [since])
    if subjects.empty:
        ui.chart("Traffic", "Events per hour.", TRAFFIC, None, empty="No traffic in the window.")
    else:
        traffic_flags = summary[summary["detector"] == "traffic"]
        subject = st.selectbox("App and event type", subjects["subject"], key="subject")
        _series(
            f"Traffic: {subject}",
            "Events per hour, bots left out; red points are hours "
            "flagged, grey ticks what the same hour of previous weeks predicted.",
            f"{TRAFFIC}\n-- flagged\n{FLAGS}",
            ui.query(source, TRAFFIC, [subject, since]),
            ui.query(source, FLAGS, ["traffic", subject])
            if not traffic_flags.empty
            else pd.DataFrame(),
            "events",
        )

    _series(
        "Data quality: failed events",
        "Inputs that failed per hour; red points are hours "
        "with more failures than the usual failure rate explains.",
        f"{FAILED}\n-- flagged\n{FLAGS}",
        ui.query(source, FAILED, [since]),
        ui.query(source, FLAGS, ["data_quality", "failed_events"]),
        "failed events",
    )

    daily = ui.query(source, BOTS_DAILY, [since])
    figure = None
    if not daily.empty:
        long = daily.melt("event_date", ["devices", "known_bots"], "kind", "count")
        long["kind"] = long["kind"].map({"devices": "all devices", "known_bots": "known bots"})
        figure = (
            alt.Chart(long)
            .mark_bar()
            .encode(
                x=alt.X("event_date:T", title=None),
                xOffset="kind:N",
                y=alt.Y("count:Q", title="devices active", axis=alt.Axis(format=",d")),
                color=alt.Color(
                    "kind:N",
                    title=None,
                    scale=alt.Scale(
                        domain=["all devices", "known bots"], range=[style.GOOD, style.BAD]
                    ),
                ),
                tooltip=[
                    alt.Tooltip("event_date:T", title="day"),
                    "kind:N",
                    alt.Tooltip("count:Q", format=",d"),
                ],
            )
            .properties(height=220)
        )
    ui.chart(
        "Bots",
        "Devices active each day, and those flagged as bots by their useragent "
        "or the IAB list (events.is_bot).",
        BOTS_DAILY,
        figure,
    )
    ui.table(
        "Bot-like devices",
        "Device-days the behaviour detector flagged: bursts of "
        "events, page views without pings, metronome-regular clicks.",
        BOTS,
        ui.query(source, BOTS),
        empty=f"No bot-like devices in the {WINDOW_DAYS} days up to "
        f"{pd.Timestamp(as_of):%Y-%m-%d}.",
        column_config={"events": ui.count_column("events")},
    )

"""Pipeline: what loaded, what failed and why, and how fresh each layer is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import live, style, ui

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


# a metric shown: label, key, format, what it means
Metric = tuple[str, str, Callable[[Any], str], str | None]

# what the Pipeline page shows of the collector's /metrics (loader/metrics.py): label, series,
# format, what it means
COLLECTOR = (
    ("Requests accepted", 'persona_collector_requests_total{status="accepted"}', style.count,
     "spooled, then acknowledged to the tracker"),
    ("Requests refused", 'persona_collector_requests_total{status="refused"}', style.count,
     "413/414/431: too large; 503: spool full"),
    ("Spool not yet loaded", "persona_spool_pending_bytes", style.size,
     "acknowledged but not yet committed to the warehouse: the loader's backlog"),
    ("Open connections", "persona_collector_open_connections", style.count, None),
    ("Collector restarts", "persona_collector_restarts_total", style.count,
     "times its HTTP process died and was started again"),
)  # fmt: skip
LOADER = (
    ("Events loaded", 'persona_events_total{status="good"}', style.count,
     "committed to atomic.events"),
    ("Events failed", 'persona_events_total{status="failed"}', style.count,
     "committed to atomic.failed_events"),
    ("Suppressed", "persona_events_suppressed_total", style.count,
     "events dropped: an id they carry was forgotten"),
    ("Batches", "persona_batches_total", style.count, None),
    ("Last batch", "persona_batch_rows", style.count, "events in the last committed batch"),
    ("Latency", "persona_end_to_end_latency_seconds", style.duration,
     "collector receipt to warehouse commit, of the newest event in the last batch"),
)  # fmt: skip


def _age(seconds: object) -> str:
    return "never" if seconds is None else f"{style.duration(seconds)} ago"


# what it shows of the API's /health (serving/live.py): label, key, format, what it means
API = (
    ("Refreshes", "refreshes", style.count, "dbt refresh cycles since the process started"),
    ("Refresh failures", "refresh_failures", style.count, None),
    ("Last refresh", "last_refresh_age_s", _age, "when the last refresh succeeded"),
    ("Refresh took", "last_refresh_seconds", style.duration, None),
    ("Snapshot published", "snapshot_age_s", _age, "the read-only copy other processes read"),
)  # fmt: skip


def _metrics(reading: live.Reading, rows: tuple[Metric, ...], prefix: str = "") -> None:
    assert reading.values is not None
    cols = st.columns(len(rows))
    for col, (label, key, fmt, help_text) in zip(cols, rows, strict=True):
        value = reading.values.get(key)
        shown = style.NOTHING if value is None and fmt is not _age else fmt(value)
        col.metric(label, shown, help=f"{prefix}{key}" + (f": {help_text}" if help_text else ""))


def _live() -> None:
    """The live process's health, read now from its endpoints (counters since it started)."""
    ui.heading(
        "Live process",
        "The collector's and the loader's counters since `persona serve` started (/metrics), "
        "and its refresh (/health), read now.",
    )
    try:
        endpoints = live.Endpoints.from_env()
    except live.LiveError as exc:
        st.warning(str(exc))
        return
    _health(endpoints)
    ui.show_source(
        "The collector's `/metrics` (Prometheus text; loader/metrics.py says what each series "
        "means) and the API's `/health`, both read at once, each with a "
        f"{live.TIMEOUT:g} s timeout: `{endpoints.collector or live.COLLECTOR_ENV}/metrics`, "
        f"`{endpoints.api or live.API_ENV}/health`."
    )


def _health(endpoints: live.Endpoints) -> None:
    if endpoints.collector is None and endpoints.api is None:
        st.info(
            f"Not connected to a live process: set {live.COLLECTOR_ENV} and {live.API_ENV} "
            "(or run `persona dashboard --collector http://127.0.0.1:9090 --api "
            "http://127.0.0.1:8080`, the addresses `make live` serves on) to see the "
            "collector's and the loader's health and the refresh here."
        )
        return
    collector, api = live.read_health(endpoints)
    for name, reading, env in (("Collector", collector, live.COLLECTOR_ENV),
                               ("API", api, live.API_ENV)):  # fmt: skip
        if reading is None:
            st.caption(f"{name}: not configured (set {env} to see it).")
        elif not reading.up:
            st.warning(f"{name} at {reading.url} is down: {reading.error}.")
    if collector is not None and collector.up:
        st.markdown(f"**Collector** up at {endpoints.collector}")
        _metrics(collector, COLLECTOR)
        st.markdown("**Loader** (in the live process)")
        _metrics(collector, LOADER)
    if api is not None and api.up:
        assert api.values is not None
        uptime = style.duration(api.values.get("uptime_s"))
        st.markdown(f"**API and refresh** up at {endpoints.api} for {uptime}")
        _metrics(api, API, prefix="/health ")
        if error := api.values.get("last_refresh_error"):
            st.warning(f"The last refresh failed: {str(error).splitlines()[0][:300]}")


def _series(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    return frame.assign(kind=kind)[["bucket_start", "kind", "events"]]


with ui.guard("live health"):
    _live()

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

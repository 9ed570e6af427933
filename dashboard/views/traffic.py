"""Traffic and funnels: sessions by channel and device, conversion, the funnel, engagement."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import style, ui

st.title("Traffic and funnels")
st.caption(
    "Sessions (bots left out) by channel and device, how each channel converts, where "
    "shoppers drop out between viewing a product and buying, and how engaged they "
    "are. All from `sessions_daily`, one row per day x channel x device."
)

BOUNDS = """
select min(session_date) as first_day, max(session_date) as last_day
from derived.sessions_daily
"""
CHANNELS = "select distinct channel from derived.sessions_daily order by channel"
# every query below: the chosen dates and channels, one placeholder per channel
FILTER = "session_date between ? and ? and channel in ({channels})"
TOTALS = f"""
select
    sum(sessions) as sessions,
    sum(engaged_sessions) as engaged_sessions,
    sum(converted_sessions) as converted_sessions,
    sum(revenue) as revenue
from derived.sessions_daily
where {FILTER}
"""
BY_DAY = f"""
select session_date, channel, sum(sessions) as sessions
from derived.sessions_daily
where {FILTER}
group by session_date, channel
order by session_date, channel
"""
BY_DEVICE = f"""
select device_class, channel, sum(sessions) as sessions
from derived.sessions_daily
where {FILTER}
group by device_class, channel
order by device_class, channel
"""
CONVERSION = f"""
select
    channel,
    sum(sessions) as sessions,
    sum(converted_sessions) as converted_sessions,
    sum(converted_sessions) / sum(sessions) as conversion_rate,
    sum(revenue) as revenue
from derived.sessions_daily
where {FILTER}
group by channel
order by conversion_rate desc
"""
FUNNEL = f"""
select
    sum(sessions) as sessions,
    sum(product_view_sessions) as viewed_a_product,
    sum(add_to_cart_sessions) as added_to_cart,
    sum(purchase_sessions) as bought
from derived.sessions_daily
where {FILTER}
"""
ENGAGED = f"""
select engaged_time_band_s, channel, sum(sessions) as sessions
from derived.sessions_daily
where {FILTER}
group by engaged_time_band_s, channel
order by engaged_time_band_s, channel
"""
BANDS = {
    0: "under 10 s",
    10: "10-30 s",
    30: "30 s-1 min",
    60: "1-3 min",
    180: "3-10 min",
    600: "10 min and more",
}
STEPS = {
    "sessions": "all sessions",
    "viewed_a_product": "viewed a product",
    "added_to_cart": "added to cart",
    "bought": "bought",
}


def _channel_colour(names: pd.Series) -> alt.Color:
    return alt.Color("channel:N", title="channel", scale=style.channel_scale(names))


with ui.guard("Traffic and funnels"):
    source = ui.current_source()
    bounds = ui.query(source, BOUNDS).iloc[0]
    if pd.isna(bounds["last_day"]):
        st.info(
            "No sessions yet: load events (`make demo` does) and run "
            "`dbt build --selector realtime`."
        )
        st.stop()
    first, last = bounds["first_day"], bounds["last_day"]
    channels = ui.query(source, CHANNELS)["channel"].tolist()
    left, right = st.columns([1, 2])
    picked = left.date_input(
        "Dates",
        value=(max(first, last - timedelta(days=29)), last),
        min_value=first,
        max_value=last,
    )
    chosen = right.multiselect("Channels", channels, default=channels)
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.info("Pick the last day of the range too.")
        st.stop()
    if not chosen:
        st.info("Pick at least one channel.")
        st.stop()
    params = [picked[0], picked[1], *chosen]
    placeholders = ", ".join("?" * len(chosen))
    TOTALS, BY_DAY, BY_DEVICE, CONVERSION, FUNNEL, ENGAGED = (
        sql.format(channels=placeholders)
        for sql in (TOTALS, BY_DAY, BY_DEVICE, CONVERSION, FUNNEL, ENGAGED)
    )

    totals = ui.query(source, TOTALS, params).iloc[0]
    sessions = style.number(totals["sessions"])
    cols = st.columns(4)
    cols[0].metric("Sessions", style.count(sessions))
    cols[1].metric("Engaged", style.percent(totals["engaged_sessions"], sessions))
    cols[2].metric("Converted", style.percent(totals["converted_sessions"], sessions))
    cols[3].metric("Revenue", style.money(totals["revenue"]))
    if not sessions:
        st.info("No sessions on these dates in these channels: widen the filters.")
        st.stop()

    by_day = ui.query(source, BY_DAY, params)
    figure = (
        alt.Chart(by_day)
        .mark_bar()
        .encode(
            x=alt.X("session_date:T", title=None),
            y=alt.Y("sessions:Q", title="sessions", axis=alt.Axis(format=",d")),
            color=_channel_colour(by_day["channel"]),
            tooltip=[
                alt.Tooltip("session_date:T", title="day"),
                "channel:N",
                alt.Tooltip("sessions:Q", format=",d"),
            ],
        )
        .properties(height=260)
    )
    ui.chart(
        "Sessions by channel, per day",
        "Sessions started each day (UTC), coloured by the "
        "default channel group of their first page view.",
        BY_DAY,
        figure,
    )

    left, right = st.columns(2)
    with left:
        by_device = ui.query(source, BY_DEVICE, params)
        figure = (
            alt.Chart(by_device)
            .mark_bar()
            .encode(
                x=alt.X("sessions:Q", title="sessions", axis=alt.Axis(format=",d")),
                y=alt.Y("device_class:N", title=None, sort="-x"),
                color=_channel_colour(by_device["channel"]),
                tooltip=["device_class:N", "channel:N", alt.Tooltip("sessions:Q", format=",d")],
            )
            .properties(height=200)
        )
        ui.chart(
            "Sessions by device",
            "Sessions per device class (the tracker's dvce_type, "
            "else classed from the useragent), split by channel.",
            BY_DEVICE,
            figure,
        )
    with right:
        conversion = ui.query(source, CONVERSION, params)
        figure = (
            alt.Chart(conversion)
            .mark_bar()
            .encode(
                x=alt.X(
                    "conversion_rate:Q",
                    title="sessions that converted",
                    axis=alt.Axis(format=".1%"),
                ),
                y=alt.Y("channel:N", title=None, sort="-x"),
                color=alt.Color(
                    "channel:N", scale=style.channel_scale(conversion["channel"]), legend=None
                ),
                tooltip=[
                    "channel:N",
                    alt.Tooltip("conversion_rate:Q", format=".2%"),
                    alt.Tooltip("sessions:Q", format=",d"),
                    alt.Tooltip("converted_sessions:Q", format=",d"),
                    alt.Tooltip("revenue:Q", format=",.2f"),
                ],
            )
            .properties(height=200)
        )
        ui.chart(
            "Conversion by channel",
            "Share of each channel's sessions with a "
            "conversion (a transaction, var `conversions`).",
            CONVERSION,
            figure,
        )

    funnel = ui.query(source, FUNNEL, params).iloc[0]
    steps = pd.DataFrame(
        {"step": list(STEPS.values()), "sessions": [style.number(funnel[k]) for k in STEPS]}
    )
    previous = steps["sessions"].shift(1)
    steps["of the step before"] = (steps["sessions"] / previous).where(previous > 0)
    steps["of all sessions"] = steps["sessions"] / sessions
    steps["label"] = [
        style.count(n) + ("" if pd.isna(p) else f" ({100 * p:.1f}%)")
        for n, p in zip(steps["sessions"], steps["of the step before"], strict=True)
    ]
    bars = (
        alt.Chart(steps)
        .mark_bar(color=style.GOOD)
        .encode(
            x=alt.X("sessions:Q", title="sessions", axis=alt.Axis(format=",d")),
            y=alt.Y("step:N", title=None, sort=list(STEPS.values())),
            tooltip=[
                "step:N",
                alt.Tooltip("sessions:Q", format=",d"),
                alt.Tooltip("of the step before:Q", format=".1%"),
                alt.Tooltip("of all sessions:Q", format=".1%"),
            ],
        )
    )
    text = bars.mark_text(align="left", dx=4).encode(text="label:N")
    ui.chart(
        "Funnel: view → cart → purchase",
        "Sessions reaching each step (a step counts "
        "only sessions that made the one before); in brackets, the share of the step "
        "before, so 100% minus it is the drop-off.",
        FUNNEL,
        (bars + text).properties(height=180),
    )
    drop = steps.iloc[1:].copy()
    drop_cols = st.columns(len(drop))
    for col, (_, row) in zip(drop_cols, drop.iterrows(), strict=True):
        lost = 1 - row["of the step before"] if pd.notna(row["of the step before"]) else None
        col.metric(
            f"Drop-off before “{row['step']}”",
            style.NOTHING if lost is None else f"{100 * lost:.1f}%",
        )

    engaged = ui.query(source, ENGAGED, params)
    engaged["band"] = engaged["engaged_time_band_s"].map(BANDS)
    figure = (
        alt.Chart(engaged)
        .mark_bar()
        .encode(
            x=alt.X("band:N", title="engaged time per session", sort=list(BANDS.values())),
            y=alt.Y("sessions:Q", title="sessions", axis=alt.Axis(format=",d")),
            color=_channel_colour(engaged["channel"]),
            tooltip=["band:N", "channel:N", alt.Tooltip("sessions:Q", format=",d")],
        )
        .properties(height=240)
    )
    ui.chart(
        "Engaged time",
        "How long sessions were actively engaged (page pings, Snowplow's formula), by channel.",
        ENGAGED,
        figure,
    )

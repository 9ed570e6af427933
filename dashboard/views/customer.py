"""Customer 360: one customer's profile, segments, sessions on every device, events and
recommendations. Search is by bind parameter only: nothing typed here becomes SQL."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import forget, style, ui
from dashboard.source import column_exists

st.title("Customer 360")
st.caption(
    "Everything the warehouse knows about one customer: a user id, or any device id "
    "stitched to one (identity_map)."
)

TOP = """
select user_id, revenue, sessions, devices
from derived.profiles
order by revenue desc, sessions desc, user_id
limit 20
"""
EXACT = """
select user_id from derived.profiles where user_id = ?
union
select user_id from derived.identity_map where device_id = ? and user_id is not null
"""
PREFIX = """
select user_id from derived.profiles
where substr(user_id, 1, length(?)) = ?
order by user_id
limit 20
"""
PROFILE = "select * from derived.profiles where user_id = ?"
SEGMENTS = """
select segment, since from derived.segment_membership where user_id = ? order by segment
"""
DEVICES = """
select device_id_type, device_id, is_identified, first_seen_at, last_seen_at
from derived.identity_map
where user_id = ?
order by first_seen_at
"""
SESSIONS = """
select
    domain_sessionid,
    domain_userid as device,
    start_tstamp,
    end_tstamp,
    coalesce(default_channel_group, 'Unassigned') as channel,
    page_views,
    engaged_time_in_s,
    product_views,
    add_to_carts,
    purchases,
    revenue
from derived.sessions
where stitched_user_id = ?
order by start_tstamp
"""
EVENTS = """
select
    derived_tstamp,
    event_name,
    ecommerce_action,
    page_urlpath,
    domain_userid as device,
    domain_sessionid
from derived.events
where domain_sessionid in (
    select domain_sessionid from derived.sessions where stitched_user_id = ?
)
order by derived_tstamp desc
limit 200
"""
RECOMMENDATIONS = """
with recommended as (
    select * from derived.current_user_recommendations where user_id = ?
),

names as (
    select product_id, max(product_name) as product_name, max(category) as category
    from derived.product_events
    where product_id in (select product_id from recommended)
    group by product_id
)

select
    recommended.recommendation_rank as rank,
    recommended.product_id,
    names.product_name,
    names.category,
    recommended.score,
    recommended.recommended_by,
    recommended.rule_set_version
from recommended
left join names on recommended.product_id = names.product_id
order by rank
"""
# the live process's record (serving/interventions/outbox.py): fired for the user, one of
# their devices or one of their sessions
INTERVENTIONS = """
with targets as (
    select 'user_id' as target_key, ? as target_id
    union all
    select 'domain_userid', device_id from derived.identity_map
    where user_id = ? and device_id_type = 'domain_userid'
    union all
    select 'domain_sessionid', sessions.domain_sessionid from derived.sessions as sessions
    where sessions.stitched_user_id = ?
)
select fired.fired_at, fired.name, fired.version, fired.source, fired.target_key,
    fired.sse_subscribers
from interventions.fired as fired
inner join targets using (target_key, target_id)
order by fired.fired_at desc
limit 100
"""
REASONS = {
    "similarity": "similar to items they viewed, carted or bought",
    "popular_segment": "popular in their segment (too little history of their own)",
    "popular_global": "popular with everyone (too little history of their own)",
}


def _find(source: ui.Source, text: str) -> list[str]:
    found: list[str] = ui.query(source, EXACT, [text, text])["user_id"].tolist()
    if found:
        return found
    by_prefix: list[str] = ui.query(source, PREFIX, [text, text])["user_id"].tolist()
    return by_prefix


def _profile(profile: pd.Series, segments: pd.DataFrame) -> None:
    cols = st.columns(5)
    cols[0].metric(
        "Revenue",
        style.money(profile["revenue"]),
        help=f"last 90 days: {style.money(profile['revenue_90d'])}",
    )
    cols[1].metric("Purchases", style.count(profile["purchases"]))
    cols[2].metric("Sessions", style.count(profile["sessions"]))
    cols[3].metric("Devices", style.count(profile["devices"]))
    cols[4].metric("Days since last visit", style.count(profile["days_since_last_visit"]))
    scores = " ".join(
        f"{letter}{profile[k] if pd.notna(profile[k]) else style.NOTHING}"
        for letter, k in (("R", "recency_score"), ("F", "frequency_score"), ("M", "monetary_score"))
    )
    facts = {
        "Lifecycle": profile["lifecycle_stage"],
        "RFM": f"{profile['rfm_segment'] or style.NOTHING} ({scores})",
        "Engagement": profile["engagement_tier"],
        "Came from": profile["acquisition_channel"],
        "Top categories": (profile["top_categories"] or "").replace(",", ", "),
        "Segments": ", ".join(segments["segment"]) or "none",
        "Profile as of": f"{pd.Timestamp(profile['as_of']):%Y-%m-%d %H:%M} UTC",
    }
    st.markdown(
        "  \n".join(
            f"**{k}:** {v if v is not None and v == v else style.NOTHING}" for k, v in facts.items()
        )
    )


forget.show_result()  # the last forget's outcome, before the search (its widgets are reset)

with ui.guard("Customer 360"):
    source = ui.current_source()
    left, right = st.columns([2, 1])
    text = left.text_input(
        "User id or device id",
        key="customer_search",
        placeholder="a user_id, or a domain_userid / network_userid",
    ).strip()
    top = ui.query(source, TOP)
    if top.empty:
        st.info("No profiles yet: run `make demo` (or `dbt build --selector realtime`).")
        st.stop()
    picked = right.selectbox(
        "or one of the top customers by revenue", top["user_id"], index=None, key="customer_top"
    )
    if text:
        matches = _find(source, text)
        if not matches:
            st.info(
                f"No user or device matches “{text}”: paste a whole user_id or device "
                "id, or the start of a user_id."
            )
            st.stop()
        user = matches[0] if len(matches) == 1 else st.selectbox("Matching users", matches)
    elif picked:
        user = picked
    else:
        st.info("Search for a customer, or pick one of the top customers.")
        ui.show_sql(f"{EXACT}\n-- else, the start of a user_id\n{PREFIX}")
        st.stop()

    profile = ui.query(source, PROFILE, [user])
    if profile.empty:
        st.info(
            f"{user} is stitched to devices but has no profile yet: the next refresh builds it."
        )
        st.stop()
    st.header(user)
    _profile(profile.iloc[0], ui.query(source, SEGMENTS, [user]))
    ui.show_sql(f"{PROFILE}\n-- segments\n{SEGMENTS}")

    sessions = ui.query(source, SESSIONS, [user])
    figure = None
    if not sessions.empty:
        base = alt.Chart(sessions).encode(
            y=alt.Y("device:N", title="device"),
            color=alt.Color("channel:N", scale=style.channel_scale(sessions["channel"])),
            tooltip=[
                alt.Tooltip("start_tstamp:T", title="start", format="%Y-%m-%d %H:%M"),
                "channel:N",
                alt.Tooltip("page_views:Q", format=",d"),
                alt.Tooltip("engaged_time_in_s:Q", title="engaged s", format=",d"),
                alt.Tooltip("purchases:Q", format=",d"),
                alt.Tooltip("revenue:Q", format=",.2f"),
            ],
        )
        figure = (
            base.mark_rule(strokeWidth=6).encode(
                x=alt.X("start_tstamp:T", title=None), x2="end_tstamp:T"
            )
            + base.mark_circle(opacity=0.85).encode(
                x="start_tstamp:T",
                size=alt.Size("page_views:Q", title="page views", scale=alt.Scale(range=[40, 400])),
            )
        ).properties(height=max(110, 50 * sessions["device"].nunique()))
    ui.chart(
        "Sessions on every device",
        "Each bar a session, one row per device stitched to this customer, coloured by channel.",
        SESSIONS,
        figure,
        empty="No sessions (bots are left out).",
    )
    ui.table(
        "Devices",
        "Device ids stitched to this customer (identity_map).",
        DEVICES,
        ui.query(source, DEVICES, [user]),
        empty="No devices recorded.",
    )

    recs = ui.query(source, RECOMMENDATIONS, [user])
    recs["why"] = recs["recommended_by"].map(lambda r: REASONS.get(r, r))
    ui.table(
        "Recommendations now",
        "The served rule set's top items for them, with why each was recommended.",
        RECOMMENDATIONS,
        recs.drop(columns=["recommended_by"]),
        empty="No recommendations: run `dbt build --selector retrain` to train a rule set.",
    )

    ui.table(
        "Events",
        "Their newest 200 events, on every device.",
        EVENTS,
        ui.query(source, EVENTS, [user]),
        empty="No events.",
    )

    if column_exists(source, "interventions", "fired", "target_id"):
        ui.table(
            "Interventions fired",
            "Interventions the live process fired for them, their devices or sessions.",
            INTERVENTIONS,
            ui.query(source, INTERVENTIONS, [user, user, user]),
            empty="None fired for this customer.",
        )

    # a customer who never logged in is known by their device id
    anonymous = profile.iloc[0].get("is_identified") is not None and not bool(
        profile.iloc[0]["is_identified"]
    )
    forget.panel(source, user, "domain_userid" if anonymous else "user_id")

"""Segments and audiences: sizes over time, entries and exits, overlap, members as CSV."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import style, ui

st.title("Segments and audiences")
st.caption(
    "Segments are data (`segments` in dbt_project.yml), each a predicate over "
    "`profiles`; entries and exits are recorded by the `segment_history` snapshot on "
    "every refresh."
)

LATEST = "select max(changed_at) as latest from derived.segment_changes"
SUMMARY = """
with definitions as (
    select * from derived.segment_definitions
),

members as (
    select segment, count(*) as members
    from derived.segment_membership
    group by segment
),

recent as (
    select
        segment,
        sum(case when change_type = 'enter' then 1 else 0 end) as entries,
        sum(case when change_type = 'exit' then 1 else 0 end) as exits
    from derived.segment_changes
    where changed_at >= ?
    group by segment
)

select
    definitions.segment,
    definitions.description,
    coalesce(members.members, 0) as members,
    coalesce(recent.entries, 0) as entries_7d,
    coalesce(recent.exits, 0) as exits_7d,
    definitions.definition
from definitions
left join members on definitions.segment = members.segment
left join recent on definitions.segment = recent.segment
order by members desc, definitions.segment
"""
DAILY = """
select
    segment,
    cast(changed_at as date) as day,
    sum(case when change_type = 'enter' then 1 else 0 end) as entries,
    sum(case when change_type = 'exit' then 1 else 0 end) as exits
from derived.segment_changes
group by segment, cast(changed_at as date)
order by segment, day
"""
OVERLAP = """
select a.segment, b.segment as other_segment, count(*) as shared_members
from derived.segment_membership as a
inner join derived.segment_membership as b on a.user_id = b.user_id
group by a.segment, b.segment
"""
AUDIENCES = """
select audience, list_type, count(*) as list_rows, count(distinct user_id) as users
from derived.audiences
group by audience, list_type
order by audience
"""
MEMBERS = """
select
    m.user_id,
    m.since,
    p.lifecycle_stage,
    p.rfm_segment,
    p.revenue_90d,
    p.last_seen_at
from derived.segment_membership as m
left join derived.profiles as p on m.user_id = p.user_id
where m.segment = ?
order by m.since, m.user_id
"""

with ui.guard("Segments and audiences"):
    source = ui.current_source()
    latest = ui.scalar(source, LATEST)
    since = (pd.Timestamp(latest) - pd.Timedelta(days=7)).to_pydatetime() if latest else None
    summary = ui.query(source, SUMMARY, [since])
    if summary.empty:
        st.info(
            "No segments defined: add one under `segments` in dbt_project.yml and run "
            "`dbt build --selector realtime`."
        )
        st.stop()
    segments = summary["segment"].tolist()
    colour = style.segment_scale(segments)
    cols = st.columns(min(len(summary), 6))
    for col, (_, row) in zip(cols, summary.head(6).iterrows(), strict=False):
        col.metric(row["segment"], style.count(row["members"]), help=row["description"])
    ui.table(
        "Segments",
        "Each segment in words, its members now, and who entered or left it "
        "in the 7 days up to the newest change.",
        SUMMARY,
        summary,
        empty="",
        column_config={
            "members": ui.count_column("members"),
            "entries_7d": ui.count_column("entered, 7 days"),
            "exits_7d": ui.count_column("left, 7 days"),
            "definition": st.column_config.TextColumn("as SQL"),
        },
    )

    daily = ui.query(source, DAILY)
    if daily.empty:
        ui.chart(
            "Sizes over time",
            "Members of each segment at the end of each day.",
            DAILY,
            None,
            empty="No entries or exits recorded yet: `dbt build` runs the "
            "segment_history snapshot that records them.",
        )
    else:
        daily["day"] = pd.to_datetime(daily["day"])
        daily = daily.sort_values(["segment", "day"])
        daily["members"] = (daily["entries"] - daily["exits"]).groupby(daily["segment"]).cumsum()
        sizes = (
            alt.Chart(daily)
            .mark_line(point=True)
            .encode(
                x=alt.X("day:T", title=None),
                y=alt.Y("members:Q", title="members", axis=alt.Axis(format=",d")),
                color=alt.Color("segment:N", scale=colour),
                tooltip=["segment:N", alt.Tooltip("day:T"), alt.Tooltip("members:Q", format=",d")],
            )
            .properties(height=240)
        )
        ui.chart(
            "Sizes over time",
            "Members of each segment at the end of each day: entries "
            "minus exits, summed from the first recorded change.",
            DAILY,
            sizes,
        )
        moves = daily.melt(["segment", "day"], ["entries", "exits"], "change", "users")
        moves.loc[moves["change"] == "exits", "users"] *= -1
        bars = (
            alt.Chart(moves)
            .mark_bar()
            .encode(
                x=alt.X("day:T", title=None),
                y=alt.Y("users:Q", title="entered (up) / left (down)", axis=alt.Axis(format=",d")),
                color=alt.Color("segment:N", scale=colour),
                tooltip=[
                    "segment:N",
                    "change:N",
                    alt.Tooltip("day:T"),
                    alt.Tooltip("users:Q", format=",d"),
                ],
            )
            .properties(height=220)
        )
        ui.chart(
            "Entries and exits per day",
            "Users entering each segment (above the line) and leaving it (below), per day.",
            DAILY,
            bars,
        )

    overlap = ui.query(source, OVERLAP)
    figure = None
    if not overlap.empty:
        sizes_now = dict(zip(summary["segment"], summary["members"], strict=True))
        overlap["share"] = overlap["shared_members"] / overlap["segment"].map(sizes_now)
        order = [s for s in segments if s in set(overlap["segment"])]
        base = alt.Chart(overlap).encode(
            x=alt.X("other_segment:N", title="also in", sort=order),
            y=alt.Y("segment:N", title="members of", sort=order),
        )
        heat = base.mark_rect().encode(
            color=alt.Color(
                "share:Q",
                title="share",
                scale=alt.Scale(scheme="blues"),
                legend=alt.Legend(format=".0%"),
            ),
            tooltip=[
                "segment:N",
                "other_segment:N",
                alt.Tooltip("shared_members:Q", format=",d"),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        labels = base.mark_text(fontSize=11).encode(
            text=alt.Text("share:Q", format=".0%"),
            color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black")),
        )
        figure = (heat + labels).properties(height=40 * len(order) + 40)
    ui.chart(
        "Overlap",
        "Of each row's members, the share who are also in the column's "
        "segment (the diagonal is 100%).",
        OVERLAP,
        figure,
        empty="No segment has members yet.",
    )

    audiences = ui.query(source, AUDIENCES)
    ui.table(
        "Audiences",
        "Ad audiences built from segments (include lists) and from recent "
        "purchases (suppression lists, per product or category).",
        AUDIENCES,
        audiences,
        empty="No audiences defined (`audiences` in dbt_project.yml).",
        column_config={"list_rows": ui.count_column("rows"), "users": ui.count_column("users")},
    )

    ui.heading("Download members", "A segment's members now, with a few profile fields, as CSV.")
    chosen = st.selectbox("Segment", segments, key="download_segment")
    members = ui.query(source, MEMBERS, [chosen])
    st.download_button(
        f"Download {style.count(len(members))} members of {chosen} (CSV)",
        members.to_csv(index=False).encode(),
        file_name=f"{chosen}-members.csv",
        mime="text/csv",
        disabled=members.empty,
    )
    ui.show_sql(MEMBERS)

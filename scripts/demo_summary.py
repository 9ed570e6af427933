"""Print what the demo built: counts, and one customer with their sessions; then what to try.

python scripts/demo_summary.py warehouse.duckdb
"""

from __future__ import annotations

import sys

import duckdb
from rich.console import Console
from rich.table import Table

COUNTS = """
select
    (select count(*) from atomic.events) as events_loaded,
    (select count(*) from atomic.failed_events) as events_failed,
    (select count(*) from derived.events) as events_deduplicated,
    (select count(*) from derived.events where is_bot) as bot_events,
    (select count(*) from derived.page_views) as page_views,
    (select count(*) from derived.screen_views) as app_screen_views,
    (select count(*) from derived.sessions) as sessions,
    (select count(*) from derived.quarantined_sessions) as quarantined_sessions,
    (select count(*) from derived.users) as users,
    (select count(*) from derived.users where is_identified) as identified_users
"""

# A buyer on the web and in the app, on several devices, with a screenful of sessions:
# stitching at work.
EXAMPLE = """
select user_id, platforms, devices, sessions, page_views, screen_views, purchases,
    round(revenue, 2) as revenue,
    strftime(first_seen_at, '%Y-%m-%d') as first_seen,
    strftime(last_seen_at, '%Y-%m-%d') as last_seen
from derived.users
where is_identified
order by platforms = 'both' desc, devices > 1 desc, purchases > 0 desc,
    sessions between 4 and 12 desc, revenue desc, user_id
limit 1
"""

SEGMENTS = """
select d.segment, d.description, count(m.user_id) as members
from derived.segment_definitions as d
left join derived.segment_membership as m using (segment)
group by all
order by members desc, d.segment
"""

PROFILE = """
select user_id, as_of, lifecycle_stage, engagement_tier, rfm_segment,
    recency_score || '/' || frequency_score || '/' || monetary_score as rfm,
    sessions, sessions_30d, purchases, round(revenue, 2) as revenue,
    round(avg_order_value, 2) as avg_order_value, days_since_last_visit, days_since_last_purchase,
    usual_visit_gap_days, top_categories, top_products, preferred_channel,
    preferred_device_type, preferred_hour_utc, platforms, web_sessions_30d, mobile_sessions_30d
from derived.profiles
where user_id = ?
"""

ANOMALIES = """
select detector, severity, subject, strftime(bucket_start, '%Y-%m-%d %H:%M') as bucket,
    observed, round(expected, 1) as expected, round(score, 1) as score, reason
from derived.anomalies
where severity != 'info'
order by detector, abs(score) desc
limit 10
"""

RECOMMENDED = """
with names as (
    select product_id, max(product_name) as product_name, max(category) as category
    from derived.product_events group by product_id
)
select r.recommendation_rank as rank, r.product_id, n.product_name, n.category,
    round(r.score, 3) as score, r.recommended_by
from derived.current_user_recommendations as r
left join names as n using (product_id)
where r.user_id = ?
order by r.recommendation_rank
limit 5
"""

SESSIONS = """
select strftime(start_tstamp, '%Y-%m-%d %H:%M') as started,
    left(domain_userid, 8) as device,
    case when user_id is null then 'anonymous' else 'logged in' end as "login",
    platform_type as platform, page_views as pages, screen_views as screens,
    engaged_time_in_s as engaged_s, purchases, round(revenue, 2) as revenue,
    default_channel_group as channel
from derived.sessions
where stitched_user_id = ?
order by start_tstamp
limit 15
"""


def _table(title: str, cursor: duckdb.DuckDBPyConnection) -> Table:
    table = Table(title=title, title_justify="left")
    names = [d[0] for d in cursor.description]
    for name in names:
        table.add_column(
            name,
            justify="left"
            if name in ("user_id", "platforms", "device", "login", "platform", "channel")
            else "right",
        )
    for row in cursor.fetchall():
        table.add_row(
            *("" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in row)
        )
    return table


# The item the example customer likes best: a session item for `persona recs recommend`.
FAVOURITE = """
select product_id from derived.interactions where user_id = ?
order by affinity desc, product_id limit 1
"""


def next_steps(console: Console, path: str, user: str | None, item: str | None) -> None:
    """The three things to try (README.md lists the same three)."""
    duckdb_flag = "" if path == "warehouse.duckdb" else f" --duckdb {path}"
    who = f"--user {user}" if user else "--user USER_ID"
    items = f" --items {item}" if item else ""
    sql = "select lifecycle_stage, count(*) as users from derived.profiles group by all"
    steps = [
        ("Ask the warehouse in SQL (more queries in README.md and docs/models.md):",
         f"python -c \"import duckdb; print(duckdb.connect('{path}').sql('{sql}'))\""),
        ("Score a live context for the customer above (their favourite item in the session):",
         f"persona recs recommend {who}{items}{duckdb_flag}"),
        ("Add a segment to `segments` in dbt_project.yml (README.md shows one), then rebuild:",
         "dbt build --selector realtime --vars '{as_of: latest_event}'"),
    ]  # fmt: skip
    console.print()
    console.print("[bold]Next: three things to try[/] (first: source .venv/bin/activate)")
    for n, (what, command) in enumerate(steps, 1):
        console.print(f"{n}. {what}", highlight=False)
        console.print(f"   [cyan]{command}[/]", highlight=False, soft_wrap=True)
    console.print("Where to go next: README.md, then docs/ (loader, models, recommendations).")


def main(path: str) -> int:
    console = Console()
    if not console.is_terminal:  # piped or in make's log: no need to squeeze to 80 columns
        console = Console(width=110)
    con = duckdb.connect(path, read_only=True)
    counts = con.execute(COUNTS)
    names = [d[0] for d in counts.description]
    totals = Table(title="Warehouse", title_justify="left", show_header=False)
    for name, value in zip(names, counts.fetchone(), strict=True):
        totals.add_row(name.replace("_", " "), f"{value:,}")
    console.print(totals)
    example = con.execute(EXAMPLE).fetchone()
    if example is None:
        console.print("No identified customer yet.")
        next_steps(console, path, None, None)
        return 0
    console.print(_table("Example customer", con.execute(EXAMPLE)))
    console.print(
        _table("Their sessions, on every device, web and app", con.execute(SESSIONS, [example[0]]))
    )
    profile = con.execute(PROFILE, [example[0]])
    names = [d[0] for d in profile.description]
    card = Table(title="Their profile (derived.profiles)", title_justify="left", show_header=False)
    for name, value in zip(names, profile.fetchone(), strict=True):
        card.add_row(name, "" if value is None else str(value))
    console.print(card)
    console.print(
        _table("Recommended for them (derived.current_user_recommendations)",
               con.execute(RECOMMENDED, [example[0]]))
    )  # fmt: skip
    console.print(_table("Segments (derived.segment_membership)", con.execute(SEGMENTS)))
    known_bots = con.execute(
        "select count(*) from derived.anomalies where severity = 'info'"
    ).fetchone()[0]
    anomalies = _table(
        f"Anomalies (derived.anomalies; {known_bots} known bots left out)",
        con.execute(ANOMALIES),
    )
    if anomalies.row_count:
        console.print(anomalies)
    else:
        console.print(f"No anomalies in the last week of data ({known_bots} known bots left out).")
    favourite = con.execute(FAVOURITE, [example[0]]).fetchone()
    next_steps(console, path, example[0], favourite[0] if favourite else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "warehouse.duckdb"))

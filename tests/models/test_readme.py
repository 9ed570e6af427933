"""The SQL examples of the README and of docs/models.md run as written against a built
warehouse, and each returns what its comment says (checked against other tables)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import duckdb

from loader.enriched import Event
from tests.conftest import ROOT
from tests.models.conftest import Dbt

PAGES = ("README.md", "docs/models.md")
MONEY = re.compile(r"revenue|price|order_value|amount", re.I)

Check = Callable[[duckdb.DuckDBPyConnection, list[str], list[tuple[Any, ...]]], None]


def one(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> Any:
    return con.execute(sql, list(params)).fetchone()[0]


def channels(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns == ["channel", "sessions", "conversion_pct"]
    assert sum(r[1] for r in rows) == one(con, "select count(*) from derived.sessions")
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    assert all(0 <= r[2] <= 100 for r in rows)
    buyers = one(con, "select count(*) from derived.sessions where purchases > 0")
    assert buyers > 0 and any(r[2] > 0 for r in rows)


def multi_device(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns[:2] == ["user_id", "devices"]
    for user_id, devices, *_ in rows:
        seen_on = one(
            con,
            "select count(distinct domain_userid) from derived.sessions where stitched_user_id = ?",
            user_id,
        )
        assert devices == seen_on > 1, user_id


def stitched_later(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns == ["domain_sessionid", "domain_userid", "stitched_user_id", "start_tstamp"]
    for _, device, stitched, _ in rows:
        # the device logged in at some point: the identity map gives it that user
        mapped = con.execute(
            "select user_id, is_identified from derived.identity_map "
            "where device_id_type = 'domain_userid' and device_id = ?",
            [device],
        ).fetchone()
        assert mapped == (stitched, True), device


def web_and_app(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns[:4] == ["user_id", "platforms", "web_sessions", "mobile_sessions"]
    for user_id, platforms, web, app, *_ in rows:
        seen = con.execute(
            "select count_if(platform_type = 'web'), count_if(platform_type = 'mobile') "
            "from derived.sessions where stitched_user_id = ?",
            [user_id],
        ).fetchone()
        assert platforms == "both" and seen == (web, app) and web > 0 and app > 0, user_id


def top_screens(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns == ["screen", "views", "engaged_s"]
    assert sum(r[1] for r in rows) == one(con, "select count(*) from derived.screen_views") > 0
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    assert any(r[2] > 0 for r in rows)


def best_customers(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns[0] == "user_id" and "lifecycle_stage" in columns
    buyers = one(con, "select count(*) from derived.users where purchases > 0")
    assert len(rows) == min(5, buyers)
    for row in rows:
        assert one(con, "select purchases from derived.users where user_id = ?", row[0]) > 0


def segment_sizes(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns == ["segment", "description", "members"]
    defined = {
        r[0] for r in con.execute("select segment from derived.segment_definitions").fetchall()
    }
    assert {r[0] for r in rows} == defined  # every segment, empty ones too
    assert sum(r[2] for r in rows) == one(con, "select count(*) from derived.segment_membership")
    assert any(r[2] > 0 for r in rows)


def segment_changes(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert {"user_id", "segment", "change_type", "changed_at"} <= set(columns)
    defined = {
        r[0] for r in con.execute("select segment from derived.segment_definitions").fetchall()
    }
    at = {name: columns.index(name) for name in ("segment", "changed_at")}
    assert {r[at["segment"]] for r in rows} <= defined
    times = [r[at["changed_at"]] for r in rows]
    assert times == sorted(times, reverse=True)


def suppressed(con: duckdb.DuckDBPyConnection, columns: list[str], rows: list[tuple]) -> None:
    assert columns == ["user_id", "product_id", "reason"]
    for user_id, product_id, _ in rows:
        # the user (through any of their devices) bought that product
        bought = one(
            con,
            "select count(*) from derived.product_events as p "
            "left join derived.identity_map as m "
            "on m.device_id_type = 'domain_userid' and m.device_id = p.domain_userid "
            "where coalesce(m.user_id, p.domain_userid) = ? and p.product_id = ? "
            "and p.ecommerce_action = 'transaction'",
            user_id,
            product_id,
        )
        assert bought > 0, (user_id, product_id)


# Each example's first line (its comment) names its check: a new example needs one.
CHECKS: dict[str, Check] = {
    "-- Sessions per marketing channel, with conversion rate": channels,
    "-- Customers who use more than one device, stitched into one user": multi_device,
    "-- Anonymous sessions that were stitched to a user who logged in later": stitched_later,
    "-- The best customers, as personalization sees them": best_customers,
    "-- Customers on the web and in an app": web_and_app,
    "-- The most viewed screens, with their engaged time": top_screens,
    "-- Segment sizes, with what each segment means": segment_sizes,
    "-- Who joined or left a segment since the last sync": segment_changes,
    "-- Suppression lists for ad platforms: do not show these users ads for these products": (
        suppressed
    ),
}


def documented_queries() -> list[tuple[str, str]]:
    """(page, query) for every statement of every ```sql block of the pages."""
    out = []
    for page in PAGES:
        blocks = re.findall(r"```sql\n(.*?)```", (ROOT / page).read_text(), re.S)
        for block in blocks:
            # a block indented under a list item: the indentation is not part of the SQL
            text = "\n".join(line.strip() for line in block.splitlines())
            out += [(page, q.strip()) for q in text.split(";") if q.strip()]
    return out


def test_documented_queries_run_and_return_what_they_say(shop: tuple[Dbt, list[Event]]) -> None:
    dbt, _ = shop
    queries = documented_queries()
    assert {page for page, _ in queries} == set(PAGES)
    con = dbt.connect()
    for page, query in queries:
        comment = query.splitlines()[0]
        assert comment in CHECKS, f"{page}: no check for the example {comment!r}"
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        assert rows, f"{page}: {comment} returned nothing"
        CHECKS[comment](con, columns, rows)
        for i, name in enumerate(columns):  # money is exact (it once printed 503.95000000000005)
            if MONEY.search(name):
                values = [r[i] for r in rows if r[i] is not None]
                assert all(isinstance(v, Decimal) for v in values), f"{name}: {comment}"

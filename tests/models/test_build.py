"""Synthetic stream → loader → `dbt build` on a scratch DuckDB; the models checked against
rules computed here, in Python, from the same events."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import duckdb
import pytest

from loader.enriched import Event
from tests.models.conftest import Dbt

DAYS_LATE_ALLOWED = 3


@pytest.fixture(scope="module")
def built(shop: tuple[Dbt, list[Event]]) -> tuple[duckdb.DuckDBPyConnection, list[Event]]:
    dbt, events = shop
    return dbt.connect(), events


def expected_events(events: list[Event]) -> dict[str, Event]:
    """Snowplow's rules: earliest arrival per event_id wins; sent > 3 days late is dropped."""
    kept: dict[str, Event] = {}
    for e in sorted(events, key=lambda e: (e["collector_tstamp"], e["dvce_created_tstamp"])):
        kept.setdefault(e["event_id"], e)
    return {
        k: e
        for k, e in kept.items()
        if (e["dvce_sent_tstamp"].date() - e["dvce_created_tstamp"].date()).days
        <= DAYS_LATE_ALLOWED
    }


def test_events_are_deduplicated_and_late_ones_dropped(built) -> None:
    con, events = built
    expected = expected_events(events)
    assert len(expected) < len({e["event_id"] for e in events}) < len(events)  # data has both
    rows = con.execute("select event_id, collector_tstamp from derived.events").fetchall()
    assert {r[0]: r[1] for r in rows} == {k: e["collector_tstamp"] for k, e in expected.items()}


CLIENT_SESSION = "contexts_com_snowplowanalytics_snowplow_client_session_1"


def device_and_session(e: Event) -> tuple[str | None, str | None]:
    """An event's device and session keys: an app's client_session, else the web cookies."""
    if app := e.get(CLIENT_SESSION):
        return app[0]["userId"], app[0]["sessionId"]
    return e.get("domain_userid"), e.get("domain_sessionid")


def test_every_session_is_stitched_to_the_latest_login_of_its_device(built) -> None:
    con, events = built
    latest: dict[str, tuple] = {}
    for e in expected_events(events).values():
        device = device_and_session(e)[0]
        if e.get("user_id") and device and not is_bot(e):
            seen = latest.get(device)
            if seen is None or e["collector_tstamp"] > seen[0]:
                latest[device] = (e["collector_tstamp"], e["user_id"])
    rows = con.execute(
        "select domain_userid, user_id, stitched_user_id from derived.sessions"
    ).fetchall()
    stitched_anonymous = 0
    for domain_userid, user_id, stitched in rows:
        want = latest[domain_userid][1] if domain_userid in latest else domain_userid
        assert stitched == want, domain_userid
        stitched_anonymous += user_id is None and domain_userid in latest
    assert stitched_anonymous > 0  # anonymous sessions later stitched: the point of the map
    users = con.execute("select count(*) from derived.users where devices > 1").fetchone()[0]
    assert users > 0  # cross-device users merged into one row


def is_bot(e: Event) -> bool:
    robots = e.get("contexts_com_iab_snowplow_spiders_and_robots_1") or [{}]
    return bool(robots[0].get("spiderOrRobot"))


def test_page_views_sessions_and_revenue_add_up(built) -> None:
    con, events = built
    human = [e for e in expected_events(events).values() if not is_bot(e)]
    page_views = {
        e["contexts_com_snowplowanalytics_snowplow_web_page_1"][0]["id"]
        for e in human
        if e["event_name"] == "page_view"
    }
    assert con.execute("select count(*) from derived.page_views").fetchone()[0] == len(page_views)
    per_session: dict[str, float] = defaultdict(float)
    for e in human:
        action = e.get(
            "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1"
        )
        if action and action["type"] == "transaction":
            revenue = e["contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1"][0][
                "revenue"
            ]
            per_session[device_and_session(e)[1]] += revenue
    got = dict(
        con.execute(
            "select domain_sessionid, revenue from derived.sessions where purchases > 0"
        ).fetchall()
    )
    quarantined = {
        r[0]
        for r in con.execute("select domain_sessionid from derived.quarantined_sessions").fetchall()
    }
    assert got.keys() == per_session.keys() - quarantined
    for session, revenue in got.items():
        # money is exact: a decimal equal to the cents of the sum, not a float near it
        assert revenue == Decimal(str(round(per_session[session], 2))), session
    bots = con.execute(
        "select count(*) from derived.sessions as s join derived.events as e "
        "using (domain_sessionid) where e.is_bot"
    ).fetchone()[0]
    assert bots == 0


def test_every_column_people_query_is_documented(built) -> None:
    """One yml per folder documents each model's columns (events: the atomic columns are
    Snowplow's own, documented by the contract; its derived ones are in _base.yml)."""
    import yaml

    from tests.conftest import ROOT

    con, _ = built
    documented: dict[str, set[str]] = {}
    for yml in (ROOT / "models").rglob("_*.yml"):
        for model in yaml.safe_load(yml.read_text()).get("models", []):
            documented[model["name"]] = {c["name"] for c in model.get("columns", [])}
    for model in ("page_views", "sessions", "quarantined_sessions", "internal.session_bounds",
                  "internal.sessions_this_run", "internal.devices_this_run", "identity_map",
                  "users", "product_events", "user_daily", "user_product_daily",
                  "profiles", "segment_members", "segment_definitions", "segment_membership",
                  "segment_changes", "audiences", "traffic_hourly", "failed_events_hourly",
                  "device_behaviour_daily", "anomalies"):  # fmt: skip
        schema, _, name = model.rpartition(".")
        relation = f"derived_{schema}.{name}" if schema else f"derived.{name}"
        columns = {r[0] for r in con.execute(f"describe {relation}").fetchall()}
        assert columns - documented[name] == set(), model


def test_money_is_a_decimal_everywhere(built) -> None:
    """Revenue and prices are exact decimals in every model (a float prints 503.95000000000005)."""
    con, _ = built
    money = con.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'derived' and (column_name like '%revenue%' "
        "or column_name like '%price%' or column_name like 'avg_order_value%') "
        # Snowplow's own atomic fields (tr_total, ti_price, ...) are the loader's contract
        "and column_name not in (select column_name from information_schema.columns "
        "where table_schema = 'atomic' and table_name = 'events')"
    ).fetchall()
    assert len(money) > 10
    assert [m for m in money if not m[2].startswith("DECIMAL")] == []

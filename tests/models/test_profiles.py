"""Profiles, segments and audiences on the synthetic shop, checked against queries written
independently of the models, plus the segment history across refreshes."""

from __future__ import annotations

import duckdb
import pytest

from loader.enriched import Event
from tests.models.conftest import Dbt


@pytest.fixture(scope="module")
def con(shop: tuple[Dbt, list[Event]]) -> duckdb.DuckDBPyConnection:
    return shop[0].connect()


def test_lifetime_totals_equal_users_and_every_user_has_a_profile(con) -> None:
    diff = con.execute(
        """
        select count(*) from derived.users as u
        full join derived.profiles as p using (user_id)
        where p.user_id is null or u.user_id is null
            or u.sessions != p.sessions or u.page_views != p.page_views
            or u.purchases != p.purchases or abs(u.revenue - p.revenue) > 1e-6
        """
    ).fetchone()[0]
    assert diff == 0
    assert con.execute("select count(*) from derived.profiles").fetchone()[0] > 200


@pytest.mark.parametrize("days", [7, 30])
def test_windows_count_the_sessions_started_in_the_last_n_days(con, days: int) -> None:
    """as_of is the newest event; a window of n days holds as_of's day and the n-1 before."""
    expected = dict(
        con.execute(
            f"""
            select stitched_user_id,
                count(*) filter (where cast(start_tstamp as date)
                    > cast((select max(collector_tstamp) from derived.events) as date)
                      - {days}),
                from derived.sessions where domain_userid is not null
            group by 1
            """
        ).fetchall()
    )
    got = dict(con.execute(f"select user_id, sessions_{days}d from derived.profiles").fetchall())
    assert got == expected
    total = con.execute("select count(*) from derived.sessions").fetchone()[0]
    # the shop spans 10 days: a week leaves some sessions out, a month none
    assert 0 < sum(got.values()) < total if days < 10 else sum(got.values()) == total


def test_rfm_recency_never_ranks_a_more_recent_buyer_lower(con) -> None:
    rows = con.execute(
        "select last_purchase_at, recency_score, rfm_segment from derived.profiles "
        "where purchases > 0 order by last_purchase_at"
    ).fetchall()
    assert len(rows) > 20
    scores = [r[1] for r in rows]
    assert scores == sorted(scores) and set(scores) == {1, 2, 3, 4, 5}
    assert {r[2] for r in rows} >= {"Champions", "Lost", "New"}
    assert (
        con.execute(
            "select count(*) from derived.profiles where purchases = 0 and rfm_segment is not null"
        ).fetchone()[0]
        == 0
    )


def test_top_category_is_the_time_decayed_favourite(con) -> None:
    """Recomputed from the product events of the user's sessions: weights 1/3/5, half-life 14."""
    rows = con.execute(
        """
        with as_of as (select cast(max(collector_tstamp) as date) as d from derived.events),
        scored as (
            select s.stitched_user_id as user_id, p.category,
                sum(case p.ecommerce_action when 'product_view' then 1
                    when 'add_to_cart' then 3 when 'transaction' then 5 else 0 end
                    * pow(0.5, ((select d from as_of) - cast(p.derived_tstamp as date)) / 14))
                    as score
            from derived.product_events as p
            join derived.sessions as s using (domain_sessionid)
            where p.derived_tstamp <= s.end_tstamp
            group by all
        ),
        ranked as (
            select *, row_number() over (partition by user_id order by score desc) as rank
            from scored
        )
        -- users whose favourite leads clearly (an exact tie may go either way)
        select user_id, max(category) filter (where rank = 1)
        from ranked group by user_id
        having max(score) filter (where rank = 1)
            > coalesce(max(score) filter (where rank = 2), 0) + 1e-9
        """
    ).fetchall()
    assert len(rows) > 100
    got = dict(con.execute("select user_id, top_category from derived.profiles").fetchall())
    wrong = [(u, c, got.get(u)) for u, c in rows if got.get(u) != c]
    assert wrong == []

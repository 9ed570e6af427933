"""The recommendation rule sets (models/recommendations, tag `retrain`) on the synthetic shop:
retrained apart from the refresh, versioned with retention and rollback, and recommendations
that hold to their rules (checked here in Python against the tables they are built from)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import duckdb
import pytest
import yaml

from loader.enriched import Event
from tests.conftest import ROOT
from tests.models.conftest import Dbt

K = 10
RULE_MODELS = ("interactions", "item_similarity", "popular_items", "user_recommendations",
               "item_repurchase", "rule_set_versions", "current_item_similarity",
               "current_popular_items", "current_item_repurchase",
               "current_user_recommendations")  # fmt: skip


@pytest.fixture(scope="module")
def retrained(shop: tuple[Dbt, list[Event]]) -> tuple[Dbt, duckdb.DuckDBPyConnection]:
    dbt, _ = shop
    con = dbt.connect()
    tables = {
        r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()
    }
    # the shop was built by a plain `dbt build`: the default selector leaves the rule sets out
    assert "sessions" in tables
    assert not tables & set(RULE_MODELS)
    con.close()
    for _ in range(3):
        dbt("build", "--selector", "retrain", vars={"recs_versions_kept": 2})
    return dbt, dbt.connect()


def versions(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("select rule_set_version from derived.rule_set_versions order by 1")
    return [r[0] for r in rows.fetchall()]


def test_each_retrain_is_a_version_and_old_ones_are_pruned(retrained) -> None:
    _, con = retrained
    published = versions(con)
    assert len(published) == 3  # every retrain is recorded
    for table in ("item_similarity", "popular_items", "user_recommendations"):
        kept = con.execute(f"select distinct rule_set_version from derived.{table}").fetchall()
        assert sorted(r[0] for r in kept) == published[-2:], table  # recs_versions_kept: 2
    row = con.execute(
        "select training_start < training_end, interactions_rows, item_similarity_rows, "
        "user_recommendations_rows, json_extract_string(parameters_json, '$.similarity') "
        "from derived.rule_set_versions order by rule_set_version desc limit 1"
    ).fetchone()
    assert row[0] and row[1] > 0 and row[2] > 0 and row[3] > 0 and row[4] == "jaccard"
    counts = con.execute(
        "select count(*) from derived.item_similarity where rule_set_version = ?", [published[-1]]
    ).fetchone()[0]
    assert counts == row[2]


def test_serving_reads_the_newest_version_and_rolls_back(retrained) -> None:
    dbt, con = retrained
    published = versions(con)
    served = con.execute("select distinct rule_set_version from derived.current_item_similarity")
    assert [r[0] for r in served.fetchall()] == [published[-1]]
    # within one process connections share the database: dbt runs while `con` stays open
    views = "current_item_similarity current_user_recommendations current_popular_items"
    dbt("run", "--select", *views.split(), vars={"recs_serving_version": published[-2]})
    for view in views.split():
        served = con.execute(f"select distinct rule_set_version from derived.{view}").fetchall()
        assert [r[0] for r in served] == [published[-2]], view
    dbt("run", "--select", *views.split())  # back to the newest
    served = con.execute("select distinct rule_set_version from derived.current_item_similarity")
    assert [r[0] for r in served.fetchall()] == [published[-1]]


def test_pinning_a_version_that_is_not_kept_fails_naming_the_kept_ones(retrained) -> None:
    """A typo or a pruned version must not build green and serve nothing."""
    dbt, con = retrained
    kept = list(reversed(versions(con)))[:2]  # recs_versions_kept: 2, newest first
    with pytest.raises(AssertionError) as failed:
        dbt("run", "--select", "current_item_similarity", vars={"recs_serving_version": "v0"})
    assert "recs_serving_version 'v0' is not a kept rule-set version" in str(failed.value)
    assert f"kept (newest first): {kept[0]}, {kept[1]}" in str(failed.value)
    served = con.execute("select count(*) from derived.current_item_similarity").fetchone()[0]
    assert served > 0  # the view still serves the newest


def test_interactions_are_stitched_users_and_weighted_actions(retrained) -> None:
    _, con = retrained
    # each product event's session's stitched user (the device without a session), by hand
    expected = con.execute(
        """
        select coalesce(s.stitched_user_id, p.domain_userid) as user_id, p.product_id,
               sum(case p.ecommerce_action when 'product_view' then 1 when 'add_to_cart' then 3
                   when 'transaction' then 5 else 0 end) as weight
        from derived.product_events as p
        left join derived.sessions as s using (domain_sessionid)
        where not p.is_bot
        group by all
        """
    ).fetchall()
    got = con.execute("select user_id, product_id, weight from derived.interactions").fetchall()
    assert {(u, p): w for u, p, w in got} == {(u, p): float(w) for u, p, w in expected}
    unknown = con.execute(
        "select count(*) from derived.interactions where user_id not in "
        "(select user_id from derived.users)"
    ).fetchone()[0]
    assert unknown == 0


def test_similarity_is_jaccard_of_co_occurrence(retrained) -> None:
    _, con = retrained
    users_of: dict[str, set[str]] = defaultdict(set)
    for user, item in con.execute(
        "select user_id, product_id from derived.interactions where affinity_rank <= 100"
    ).fetchall():
        users_of[item].add(user)
    pairs: dict[tuple[str, str], float] = {}
    by_user: dict[str, set[str]] = defaultdict(set)
    for item, users in users_of.items():
        for user in users:
            by_user[user].add(item)
    for items in by_user.values():
        for a, b in combinations(sorted(items), 2):
            both = len(users_of[a] & users_of[b])
            if both >= 2:
                jaccard = both / len(users_of[a] | users_of[b])
                pairs[(a, b)] = pairs[(b, a)] = jaccard
    rows = con.execute(
        "select product_id, similar_product_id, similarity, neighbour_rank "
        "from derived.current_item_similarity"
    ).fetchall()
    assert rows
    for a, b, similarity, rank in rows:
        assert similarity == pytest.approx(pairs[(a, b)]), (a, b)
        assert 1 <= rank <= 50
    # every item keeps its best neighbours: the best pair of each item is there
    best: dict[str, float] = {}
    for (a, _b), s in pairs.items():
        best[a] = max(best.get(a, 0.0), s)
    kept = {a: s for a, _b, s, rank in rows if rank == 1}
    assert kept.keys() == best.keys()
    for a, s in kept.items():
        assert s == pytest.approx(best[a])


def test_recommendations_are_unseen_top_k_for_every_user(retrained) -> None:
    _, con = retrained
    seen = con.execute(
        "select count(*) from derived.current_user_recommendations as r "
        "join derived.interactions as i using (user_id, product_id)"
    ).fetchone()[0]
    assert seen == 0
    per_user = con.execute(
        "select count(*), min(n), max(n) from (select user_id, count(*) as n "
        "from derived.current_user_recommendations group by user_id)"
    ).fetchone()
    users = con.execute("select count(*) from derived.users").fetchone()[0]
    assert per_user == (users, K, K)
    by = dict(
        con.execute(
            "select recommended_by, count(distinct user_id) "
            "from derived.current_user_recommendations group by 1"
        ).fetchall()
    )
    assert by["similarity"] > 0 and by["popular_segment"] > 0


def test_cold_users_get_their_segments_then_the_global_most_popular(retrained) -> None:
    _, con = retrained
    cold = con.execute(
        "select user_id, count(m.segment) from derived.users left join "
        "derived.segment_membership as m using (user_id) where user_id not in "
        "(select user_id from derived.interactions) group by user_id"
    ).fetchall()
    assert cold  # users who never touched a product
    popular = [
        r[0]
        for r in con.execute(
            "select product_id from derived.current_popular_items where segment = '*' "
            f"order by popularity_rank limit {K}"
        ).fetchall()
    ]
    for user, segments in cold[:40]:
        got = con.execute(
            "select product_id, recommended_by from derived.current_user_recommendations "
            "where user_id = ? order by recommendation_rank",
            [user],
        ).fetchall()
        assert len(got) == K
        if segments == 0:
            assert [p for p, _ in got] == popular
            assert {s for _, s in got} == {"popular_global"}
        else:
            assert got[0][1] == "popular_segment"
            assert {s for _, s in got} <= {"popular_segment", "popular_global"}


def test_every_rule_set_column_is_documented(retrained) -> None:
    _, con = retrained
    spec = yaml.safe_load(
        (ROOT / "models" / "recommendations" / "_recommendations.yml").read_text()
    )
    documented = {m["name"]: {c["name"] for c in m.get("columns", [])} for m in spec["models"]}
    for model in RULE_MODELS:
        columns = {r[0] for r in con.execute(f"describe derived.{model}").fetchall()}
        assert columns == documented[model], model


def test_segments_and_suppressions_from_the_profile_models(retrained) -> None:
    """Per-segment popular lists come from segment_membership, and no one is recommended what
    an `audiences` suppression list says they must not see."""
    _, con = retrained
    segments = {r[0] for r in con.execute(
        "select distinct segment from derived.current_popular_items"
    ).fetchall()}  # fmt: skip
    members = {r[0] for r in con.execute(
        "select distinct segment from derived.segment_membership"
    ).fetchall()}  # fmt: skip
    assert segments == {"*"} | members
    suppressed = con.execute(
        "select count(*), count(distinct list_type) from derived.audiences "
        "where list_type = 'suppress'"
    ).fetchone()
    assert suppressed[0] > 0
    violations = con.execute(
        """
        select r.user_id, r.product_id, a.audience
        from derived.current_user_recommendations as r
        join (select product_id, max(category) as category from derived.product_events
              group by 1) as p using (product_id)
        join derived.audiences as a
            on a.user_id = r.user_id and a.list_type = 'suppress'
            and (a.product_id = r.product_id
                 or (a.product_id is null and a.category = p.category))
        """
    ).fetchall()
    assert violations == []
    # the suppressed users still get recommendations, of other products
    users = con.execute(
        "select count(distinct r.user_id) from derived.current_user_recommendations as r "
        "join derived.audiences as a using (user_id) where a.list_type = 'suppress'"
    ).fetchone()[0]
    assert users > 0


def test_interaction_log_input(tmp_path: Path, make_dbt: Callable[[str], Dbt]) -> None:
    """The same models read a plain log (what `python -m udfs evaluate` loads)."""
    dbt = make_dbt("log")
    con = duckdb.connect(str(dbt.warehouse))
    con.execute("create schema recs_input")
    con.execute(
        "create table recs_input.interaction_log as select * from (values "
        "('u1','A',timestamp '2026-01-01',1.0), ('u1','B',timestamp '2026-01-02',1.0), "
        "('u2','A',timestamp '2026-01-01',1.0), ('u2','B',timestamp '2026-01-03',1.0), "
        "('u3','A',timestamp '2026-01-04',1.0)) as t(user_id, item_id, interacted_at, weight)"
    )
    con.close()
    # unit tests read the event models' column types; a bare log has no event models
    dbt("build", "--selector", "retrain", "--exclude-resource-type", "unit_test",
        vars={"recs_interactions_from": "interaction_log"})  # fmt: skip
    con = dbt.connect()
    recs = con.execute(
        "select user_id, product_id, recommended_by from derived.current_user_recommendations "
        "order by user_id, recommendation_rank"
    ).fetchall()
    assert recs == [("u3", "B", "popular_global")]  # u1, u2 have seen everything


def test_a_fixed_training_end_counts_each_interaction_once(
    tmp_path: Path, make_dbt: Callable[[str], Dbt]
) -> None:
    """What the cadence backtest sets: the window ends at a given time, and what came later is
    left out; each log row still counts once (not once per row of the log)."""
    dbt = make_dbt("log-window")
    con = duckdb.connect(str(dbt.warehouse))
    con.execute("create schema recs_input")
    con.execute(
        "create table recs_input.interaction_log as select * from (values "
        "('u1','A',timestamp '2026-01-01',1.0), ('u1','A',timestamp '2026-01-02',2.0), "
        "('u2','A',timestamp '2026-01-01',1.0), ('u2','B',timestamp '2026-01-09',1.0)) "
        "as t(user_id, item_id, interacted_at, weight)"
    )
    con.close()
    vars = {"recs_interactions_from": "interaction_log", "recs_training_end": "2026-01-05",
            "recs_training_days": None}  # fmt: skip
    dbt("build", "--selector", "retrain", "--exclude-resource-type", "unit_test", vars=vars)
    query = "select user_id, product_id, interactions, weight from derived.interactions"
    rows = dbt.connect().execute(f"{query} order by 1, 2").fetchall()
    assert rows == [("u1", "A", 2, 3.0), ("u2", "A", 1, 1.0)]


def test_a_retrain_copies_unchanged_users_and_equals_scoring_everyone(retrained) -> None:
    """Nothing new since the previous retrain: every user is copied but the suppressed ones
    (audiences change without a version). Then a new suppression for a copied user: the next
    retrain scores them again (their item goes) and equals a retrain scoring everyone, popular
    items and segments chosen again for all. Runs last: it adds versions."""
    dbt, con = retrained

    def decided(version: str) -> dict[str, bool]:
        return dict(con.execute(
            "select user_id, reused_from is not null from derived.user_rule_inputs "
            "where rule_set_version = ?", [version]
        ).fetchall())  # fmt: skip

    copied = decided(versions(con)[-1])
    suppressed = {r[0] for r in con.execute(
        "select distinct user_id from derived.audiences where list_type = 'suppress'"
    ).fetchall()}  # fmt: skip
    assert {u for u, c in copied.items() if not c} == suppressed & set(copied) != set()
    kept = sorted(u for u, c in copied.items() if c)
    user, item = con.execute(
        "select user_id, product_id from derived.user_recommendations "
        "where rule_set_version = ? and recommended_by = 'similarity' and user_id in "
        f"({', '.join('?' * len(kept))}) order by user_id, recommendation_rank limit 1",
        [versions(con)[-1], *kept],
    ).fetchone()
    con.execute(
        "insert into derived.audiences (audience, list_type, user_id, product_id) "
        "values ('planted', 'suppress', ?, ?)",
        [user, item],
    )
    columns = "user_id, recommendation_rank, product_id, recommended_by, reason, reason_detail"
    query = f"select {columns}, score from derived.user_recommendations where rule_set_version = ?"
    models = ("build", "--selector", "retrain", "--exclude-resource-type", "test")
    dbt(*models, vars={"recs_versions_kept": 2})
    newest = versions(con)[-1]
    after = decided(newest)
    assert not after[user] and sum(after.values()) == sum(copied.values()) - 1
    reused = con.execute(f"{query} order by 1, 2", [newest]).fetchall()
    assert (user, item) not in {(r[0], r[2]) for r in reused}
    dbt(*models, vars={"recs_versions_kept": 2, "recs_reuse_unchanged": False})
    everyone = con.execute(f"{query} order by 1, 2", [versions(con)[-1]]).fetchall()
    assert len(reused) == len(everyone) > 0
    for got, want in zip(reused, everyone, strict=True):
        assert got[:6] == want[:6]
        assert got[6] == pytest.approx(want[6], rel=1e-9)

"""persona_recommend registered on DuckDB and called through SQL."""

from __future__ import annotations

import duckdb
import pytest

from udfs.core import RuleSet, recommend_explained
from udfs.duckdb import load_rule_set, register

RULES = RuleSet.from_rows(
    "v1", [("A", "B", 0.5), ("A", "C", 0.2), ("B", "C", 0.4)], popular=["A", "D", "E"]
)


def pairs(got: list[dict]) -> list[dict]:
    return [{"product_id": r["product_id"], "score": r["score"]} for r in got]


def test_sql_calls_match_the_core() -> None:
    con = duckdb.connect()
    register(con, RULES)
    got = con.execute("select persona_recommend(['A'], ['B'], [2.0], 3)").fetchone()[0]
    assert got == [
        {"product_id": s.item, "score": pytest.approx(s.score), "reason": s.reason,
         "reason_detail": s.detail}
        for s in recommend_explained(RULES, ["A"], {"B": 2.0}, 3)
    ]  # fmt: skip
    assert got[0]["product_id"] == "C"
    assert (got[0]["reason"], got[0]["reason_detail"]) == ("similar_to", "B")  # 2*0.4 > 1*0.2
    assert got[-1]["reason"] == "popular_in_segment" and got[-1]["reason_detail"] == "*"


def test_with_purchases_adds_buy_again_as_the_core_does() -> None:
    rules = RuleSet.from_rows("v1", [("A", "B", 0.5)], ["D"], repurchase=[("A", 0.8, 7.0)])
    con = duckdb.connect()
    register(con, rules)
    got = con.execute(
        "select persona_recommend_with_purchases([], ['A'], [1.0], ['A'], [3], [14.0], [6.0], 3)"
    ).fetchone()[0]
    expected = recommend_explained(rules, [], {"A": 1.0}, 3, purchases={"A": (3, 14.0, 6.0)})
    assert [(r["product_id"], r["reason"]) for r in got] == [(s.item, s.reason) for s in expected]
    assert [r["product_id"] for r in got] == ["A", "B", "D"]  # A is bought: it comes back
    # without purchases A is a seen item: removed
    plain = con.execute("select persona_recommend([], ['A'], [1.0], 3)").fetchone()[0]
    assert [r["product_id"] for r in plain] == ["B", "D"]


def test_nulls_count_as_an_empty_context_and_rows_are_scored_one_by_one() -> None:
    con = duckdb.connect()
    register(con, RULES)
    assert pairs(con.execute("select persona_recommend(null, null, null, 2)").fetchone()[0]) == [
        {"product_id": "A", "score": 0.0},
        {"product_id": "D", "score": 0.0},
    ]
    rows = con.execute(
        "select s, persona_recommend([s], [], [], 1)[1].product_id from "
        "(values ('A'), ('B'), ('Z')) as t(s) order by s"
    ).fetchall()
    assert rows == [("A", "B"), ("B", "C"), ("Z", "A")]


def test_register_again_replaces_the_rule_set() -> None:
    con = duckdb.connect()
    register(con, RULES)
    register(con, RuleSet.from_rows("v2", [("A", "Q", 1.0)]))
    assert pairs(con.execute("select persona_recommend(['A'], [], [], 1)").fetchone()[0]) == [
        {"product_id": "Q", "score": 1.0}
    ]


def test_the_served_rule_set_is_read_from_the_current_views() -> None:
    con = duckdb.connect()
    con.execute("create schema derived")
    con.execute(
        "create table derived.current_item_similarity as select * from (values "
        "('v9', 'A', 1, 'B', 0.5), ('v9', 'A', 2, 'C', 0.25)) as t(rule_set_version, "
        "product_id, neighbour_rank, similar_product_id, similarity)"
    )
    con.execute(
        "create table derived.current_popular_items as select * from (values "
        "('v9', '*', 1, 'D'), ('v9', 'seg', 1, 'X')) as t(rule_set_version, segment, "
        "popularity_rank, product_id)"
    )
    rules = load_rule_set(con)
    assert rules == RuleSet.from_rows("v9", [("A", "B", 0.5), ("A", "C", 0.25)], ["D"])
    register(con)
    assert pairs(con.execute("select persona_recommend(['A'], [], [], 3)").fetchone()[0]) == [
        {"product_id": "B", "score": 0.5},
        {"product_id": "C", "score": 0.25},
        {"product_id": "D", "score": 0.0},
    ]

"""The scoring core, against values computed by hand."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.core import RuleSet, buy_again_score, recommend, recommend_explained

RULES = RuleSet.from_rows(
    "v1",
    [("A", "B", 0.5), ("A", "C", 0.2), ("B", "C", 0.4), ("B", "D", 0.1), ("C", "A", 0.2)],
    popular=["A", "E", "F"],
)


def test_scores_are_context_weight_times_similarity_summed() -> None:
    # session A (weight 1), affinity B 2.0: C = 1*0.2 + 2*0.4 = 1.0, D = 2*0.1 = 0.2
    got = recommend(RULES, ["A"], {"B": 2.0}, k=2)
    assert got == [("C", pytest.approx(1.0)), ("D", pytest.approx(0.2))]


def test_seen_items_are_removed_unless_asked_and_popular_items_fill() -> None:
    got = recommend(RULES, ["A"], None, k=4)
    assert got == [("B", 0.5), ("C", 0.2), ("E", 0.0), ("F", 0.0)]  # A is seen
    assert recommend(RULES, ["C"], None, k=1, exclude_seen=False) == [("A", 0.2)]
    assert recommend(RULES, ["A", "C"], None, k=3, exclude_seen=False)[0] == ("B", 0.5)


def test_empty_context_is_the_popular_list_and_session_weight_counts() -> None:
    assert recommend(RULES, None, None, k=2) == [("A", 0.0), ("E", 0.0)]
    assert recommend(RULES, [], {}, k=0) == []
    # a session item weighs session_weight: A at 3 makes B 1.5
    assert recommend(RULES, ["A"], None, k=1, session_weight=3.0) == [("B", 1.5)]


def test_ties_break_by_item_id() -> None:
    rules = RuleSet.from_rows("v", [("A", "Z", 0.3), ("A", "M", 0.3)])
    assert [i for i, _ in recommend(rules, ["A"], None, k=2)] == ["M", "Z"]


def test_rule_set_round_trips_through_json() -> None:
    assert RuleSet.from_json(RULES.to_json()) == RULES


# The case of the dbt unit test user_recommendations_buy_again_blends_with_similar_items
# (models/recommendations/_recommendations.yml): the table and a live call rank alike.
BOUGHT = RuleSet.from_rows(
    "v1",
    [("P", "R", 0.5), ("P", "S", 0.2)],
    popular=["P", "D"],
    repurchase=[("P", 0.5, 9.0), ("Q", 0.4, 20.0)],
    params={"buy_again_weight": 0.5, "buy_again_horizon_days": 7, "buy_again_half_life_days": 0},
)
# P bought 3 times, 12 and 2 days ago; Q once, a day ago; R viewed only
PURCHASES = {"P": (3, 12.0, 2.0), "Q": (1, 1.0, 1.0)}
AFFINITIES = {"P": 2.0, "Q": 1.0, "R": 0.5}


def test_buy_again_blends_with_similar_items_as_the_table_does() -> None:
    got = recommend_explained(BOUGHT, [], AFFINITIES, k=4, purchases=PURCHASES)
    assert [(s.item, s.reason, s.detail) for s in got] == [
        ("P", "buy_again", None),  # 0.5 x 3 x due 1 = 1.5, the best: 1, blend 0.5
        ("S", "similar_to", "P"),  # 2 x 0.2 = 0.4 of the best 1.0 (R): blend 0.2
        ("Q", "buy_again", None),  # 0.4 x 1 x (1 + 7)/20 = 0.16 of 1.5: blend 0.053
        ("D", "popular_in_segment", "*"),  # R was only viewed: removed
    ]
    assert got[0].score == pytest.approx(1.0)
    assert got[2].score == pytest.approx(0.16 / 1.5)


def test_an_item_bought_recently_is_less_due_than_one_bought_long_ago() -> None:
    # interval 10 days: bought 1 day ago -> (1 + 7)/10 = 0.8; 5 days ago -> 1.0 (capped)
    assert buy_again_score((1, 1.0, 1.0), 1.0, 10.0, 7.0) == pytest.approx(0.8)
    assert buy_again_score((1, 5.0, 5.0), 1.0, 10.0, 7.0) == pytest.approx(1.0)
    # the user's own rhythm counts: 4 purchases 30 days apart pull the item's 10 days to 25.7
    assert buy_again_score((4, 90.0, 1.0), 1.0, 10.0, 7.0) == pytest.approx(4 * 8 / ((89 + 20) / 5))
    # recency: a purchase one half-life old counts half
    assert buy_again_score((1, 30.0, 30.0), 1.0, 10.0, 7.0, 30.0) == pytest.approx(0.5)


def test_without_purchases_nothing_seen_comes_back_and_weight_one_ranks_purchases_first() -> None:
    assert "P" not in [s.item for s in recommend_explained(BOUGHT, [], AFFINITIES, k=4)]
    only_again = dataclasses.replace(BOUGHT, params=BOUGHT.params | {"buy_again_weight": 1.0})
    got = recommend_explained(only_again, [], AFFINITIES, k=2, purchases=PURCHASES)
    assert [s.item for s in got] == ["P", "Q"]


@settings(max_examples=200, deadline=None)
@given(
    session=st.lists(st.sampled_from("PQRSD"), max_size=3),
    affinities=st.dictionaries(st.sampled_from("PQRS"), st.floats(0.1, 5), max_size=4),
    bought=st.dictionaries(
        st.sampled_from("PQRS"),
        st.tuples(st.integers(1, 5), st.floats(0, 60), st.floats(0, 60)).map(
            lambda t: (t[0], max(t[1], t[2]), min(t[1], t[2]))
        ),
        max_size=3,
    ),
    k=st.integers(0, 6),
)
def test_invariants_of_a_live_call(session, affinities, bought, k) -> None:
    """At most k distinct items; nothing seen comes back unless bought; pairs == explained."""
    got = recommend_explained(BOUGHT, session, affinities, k, purchases=bought)
    items = [s.item for s in got]
    assert len(items) == len(set(items)) <= k
    seen = set(session) | set(affinities)
    assert not [i for i in items if i in seen and i not in bought]
    assert all(s.reason != "buy_again" or s.item in bought for s in got)
    plain = recommend(BOUGHT, session, affinities, k, purchases=bought)
    assert plain == [(s.item, s.score) for s in got]


def test_at_weight_one_similar_items_follow_purchases_in_their_own_order() -> None:
    rules = RuleSet.from_rows(
        "v", [("P", "Z", 0.9), ("P", "M", 0.3)], repurchase=[("P", 0.5, 9.0)],
        params={"buy_again_weight": 1.0},
    )  # fmt: skip
    got = recommend_explained(rules, [], {"P": 1.0}, k=3, purchases={"P": (2, 10.0, 1.0)})
    assert [s.item for s in got] == ["P", "Z", "M"]  # not M before Z by id

"""The scoring core, against values computed by hand."""

from __future__ import annotations

import pytest

from udfs.core import RuleSet, recommend

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

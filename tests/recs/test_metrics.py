"""The ranking metrics, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from recs.metrics import ranking_metrics


def test_metrics_match_hand_computed_values() -> None:
    # u1: truth {a, b, c}, top 3 [a, x, b]: hits at ranks 1 and 3
    # u2: truth {d}, top 3 [x, y, z]: no hits; u3: truth only (no predictions)
    truth = {"u1": {"a", "b", "c"}, "u2": {"d"}, "u3": {"e"}}
    predicted = {"u1": ["a", "x", "b", "c"], "u2": ["x", "y", "z"]}
    got = ranking_metrics(truth, predicted, k=3)
    assert got["precision@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["recall@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["map"] == pytest.approx(((1 / 1 + 2 / 3) / 3 + 0) / 2)
    assert got["map@3"] == pytest.approx(((1 / 1 + 2 / 3) / 3 + 0) / 2)  # min(3, 3) = 3
    dcg = 1 / math.log(2) + 1 / math.log(4)
    idcg = 1 / math.log(2) + 1 / math.log(3) + 1 / math.log(4)
    assert got["ndcg@3"] == pytest.approx((dcg / idcg) / 3)  # u3 counts 0, as in Recommenders


def test_map_at_k_divides_by_min_of_truth_and_k() -> None:
    truth = {"u": {"a", "b", "c", "d"}}
    got = ranking_metrics(truth, {"u": ["b", "x"]}, k=2)
    assert got["map"] == pytest.approx(1 / 4)
    assert got["map@2"] == pytest.approx(1 / 2)
    assert got["precision@2"] == pytest.approx(1 / 2)
    assert got["recall@2"] == pytest.approx(1 / 4)

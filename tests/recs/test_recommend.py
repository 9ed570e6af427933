"""`persona recs recommend` on a small hand-made warehouse: names, reasons, and what it says
when the user is unknown."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from recs.cli import main

TABLES = """
create schema derived;
create table derived.current_item_similarity as select * from (values
    ('v1', 'A', 'B', 0.5, 1), ('v1', 'A', 'C', 0.2, 2), ('v1', 'B', 'C', 0.4, 1)
) t(rule_set_version, product_id, similar_product_id, similarity, neighbour_rank);
create table derived.current_popular_items as select * from (values
    ('v1', '*', 'A', 1), ('v1', '*', 'E', 2), ('v1', 'some_segment', 'F', 1)
) t(rule_set_version, segment, product_id, popularity_rank);
create table derived.interactions as select * from (values
    ('u1', 'B', 2.0, 0, null, null), ('u3', 'E', 1.0, 2, now()::timestamp - interval 20 days,
    now()::timestamp - interval 10 days)
) t(user_id, product_id, affinity, repeatable_events, first_repeatable_at, last_repeatable_at);
create table derived.current_item_repurchase as select * from (values ('v1', 'E', 0.5, 10.0))
    t(rule_set_version, product_id, repurchase_rate, repurchase_interval_days);
create table derived.rule_set_versions as select * from (values
    ('v1', '{"buy_again_weight": 0.5, "buy_again_horizon_days": 7, "buy_again_half_life_days": 0}')
) t(rule_set_version, parameters_json);
create table derived.users as select * from (values ('u1'), ('u2'), ('u3')) t(user_id);
create table derived.product_events as select * from (values
    ('A', 'Trail shoe', 'shoes'), ('B', 'Wool sock', 'socks'), ('C', 'Rain jacket', 'outerwear'),
    ('E', 'Water bottle', 'gear')
) t(product_id, product_name, category);
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(TABLES)
    return str(path)


def recommend(warehouse: str, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[dict, str]:
    assert main(["recommend", "--duckdb", warehouse, "--json", *flags]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_a_known_user_gets_named_items_scored_by_similarity(
    warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report, _ = recommend(warehouse, capsys, "--user", "u1", "--items", "A", "--k", "3")
    assert report["rule_set_version"] == "v1"
    assert report["notes"] == []
    # context A (1) + B (2): C = 0.2 + 2 * 0.4 = 1.0; A and B are seen; E fills from popular
    got = [(r["product_id"], r["product_name"], r["from"]) for r in report["recommendations"]]
    assert got == [("C", "Rain jacket", "similar to B"), ("E", "Water bottle", "popular")]
    assert report["recommendations"][0]["score"] == pytest.approx(1.0)
    assert [r["reason"] for r in report["recommendations"]] == ["similar_to", "popular_in_segment"]


def test_what_the_user_bought_comes_back_as_buy_again(
    warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """u3 bought E twice, 10 days apart, the latest 10 days ago: due, and their only purchase."""
    report, _ = recommend(warehouse, capsys, "--user", "u3", "--k", "2")
    got = [(r["product_id"], r["reason"], r["from"]) for r in report["recommendations"]]
    assert got == [("E", "buy_again", "buy again"), ("A", "popular_in_segment", "popular")]
    assert report["recommendations"][0]["score"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("nobody", "user 'nobody' is unknown (not in derived.users)"),
        ("u2", "user 'u2' has no product interactions in the rule set's training window"),
    ],
)
def test_an_unknown_user_is_told_and_gets_the_popular_items(
    warehouse: str, capsys: pytest.CaptureFixture[str], user: str, why: str
) -> None:
    report, _ = recommend(warehouse, capsys, "--user", user)
    assert report["notes"] == [f"{why}: showing the most popular items"]
    got = [(r["product_id"], r["product_name"], r["score"]) for r in report["recommendations"]]
    assert got == [("A", "Trail shoe", 0.0), ("E", "Water bottle", 0.0)]


def test_the_table_names_the_products_and_the_note_goes_to_stderr(
    warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", "--duckdb", warehouse, "--user", "nobody", "--items", "Z"]) == 0
    captured = capsys.readouterr()
    assert "Trail shoe" in captured.out and "popular" in captured.out
    assert "user 'nobody' is unknown" in captured.err
    assert "scoring the session's items alone" in captured.err
    assert "not in rule set v1 (no neighbours): Z" in captured.err


def test_a_missing_warehouse_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.duckdb"
    assert main(["recommend", "--duckdb", str(missing), "--user", "u1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"python -m udfs recommend: error: {missing}: no such warehouse "
        "(run `make demo`, or set PERSONA_DUCKDB)"
    )

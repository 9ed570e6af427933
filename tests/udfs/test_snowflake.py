"""The Snowpark deployment in Snowpark's local testing mode: the rule set read from the
current_* tables, published to a stage under its version, the UDF registered with that file as
an import and called from a DataFrame. What only a real account shows is listed in
udfs/snowflake.py (permanent functions are not supported by local testing)."""

from __future__ import annotations

import pytest
from snowflake.snowpark import Session
from snowflake.snowpark.functions import call_udf, col

from udfs import snowflake
from udfs.core import RuleSet, recommend


@pytest.fixture
def session() -> Session:
    session = Session.builder.config("local_testing", True).create()
    session.create_dataframe(
        [["v1", "A", 1, "B", 0.5, 2], ["v1", "A", 2, "C", 0.2, 1], ["v1", "B", 1, "C", 0.4, 3]],
        schema=["RULE_SET_VERSION", "PRODUCT_ID", "NEIGHBOUR_RANK", "SIMILAR_PRODUCT_ID",
                "SIMILARITY", "COOCCURRENCE_USERS"],
    ).write.save_as_table("derived.current_item_similarity")  # fmt: skip
    session.create_dataframe(
        [["v1", "*", 1, "D", 5], ["v1", "*", 2, "E", 4], ["v1", "seg", 1, "X", 9]],
        schema=["RULE_SET_VERSION", "SEGMENT", "POPULARITY_RANK", "PRODUCT_ID", "USER_COUNT"],
    ).write.save_as_table("derived.current_popular_items")
    yield session
    session.close()


def test_rule_set_is_read_with_the_dataframe_api(session: Session) -> None:
    rules = snowflake.load_rule_set(session)
    assert rules == RuleSet.from_rows(
        "v1", [("A", "B", 0.5), ("A", "C", 0.2), ("B", "C", 0.4)], ["D", "E"]
    )


def test_publish_puts_the_version_on_the_stage(session: Session) -> None:
    rules = snowflake.load_rule_set(session)
    assert snowflake.publish(session, rules) == "@persona_rules/v1/rule_set.json"


def test_deployed_udf_scores_like_the_core(session: Session) -> None:
    rules = snowflake.load_rule_set(session)
    snowflake.deploy(session, rules, create_stage=False, permanent=False)
    df = session.create_dataframe(
        [[["A"], ["B"], [2.0], 3], [[], [], [], 2]], schema=["S", "AI", "AW", "K"]
    )
    rows = df.select(
        call_udf("persona_recommend", col("S"), col("AI"), col("AW"), col("K")).alias("R")
    ).collect()
    want = recommend(rules, ["A"], {"B": 2.0}, 3)
    got = rows[0]["R"]
    assert [r["product_id"] for r in got] == [i for i, _ in want]
    assert [r["score"] for r in got] == pytest.approx([s for _, s in want])
    assert [r["product_id"] for r in rows[1]["R"]] == ["D", "E"]  # cold: popular


def test_redeploy_switches_to_the_new_version(session: Session) -> None:
    snowflake.deploy(session, snowflake.load_rule_set(session), create_stage=False,
                     permanent=False)  # fmt: skip
    snowflake.deploy(session, RuleSet.from_rows("v2", [("A", "Q", 1.0)]), create_stage=False,
                     permanent=False)  # fmt: skip
    df = session.create_dataframe([[["A"], [], [], 1]], schema=["S", "AI", "AW", "K"])
    row = df.select(
        call_udf("persona_recommend", col("S"), col("AI"), col("AW"), col("K")).alias("R")
    ).collect()[0]
    assert [r["product_id"] for r in row["R"]] == ["Q"]


def test_the_purchases_form_adds_buy_again_with_reasons(session: Session) -> None:
    rules = RuleSet.from_rows("v3", [("A", "B", 0.5)], ["D"], repurchase=[("A", 0.8, 7.0)])
    snowflake.deploy(session, rules, create_stage=False, permanent=False)
    df = session.create_dataframe(
        [[[], ["A"], [1.0], ["A"], [3], [14.0], [6.0], 3]],
        schema=["S", "AI", "AW", "PI", "PN", "PF", "PL", "K"],
    )
    args = [col(c) for c in ("S", "AI", "AW", "PI", "PN", "PF", "PL", "K")]
    [row] = df.select(call_udf("persona_recommend_with_purchases", *args).alias("R")).collect()
    got = [(r["product_id"], r["reason"], r["reason_detail"]) for r in row["R"]]
    assert got == [("A", "buy_again", None), ("B", "similar_to", "A"),
                   ("D", "popular_in_segment", "*")]  # fmt: skip

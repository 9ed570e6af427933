"""The core as a DuckDB SQL function::

    select persona_recommend(['sku-0001'], list(product_id), list(affinity), 10)
    from derived.interactions where user_id = 'u1';
    -- [{'product_id': 'sku-0042', 'score': 0.83}, ...]

Arguments: the session's items, the user's affinity items and their weights (parallel lists;
NULL lists count as empty) and k. DuckDB functions live in a connection, so the serving
process registers it on its connection (``register``) after each retrain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import duckdb

from udfs.core import RuleSet, recommend

FUNCTION = "persona_recommend"
RESULT = duckdb.list_type(
    duckdb.struct_type({"product_id": duckdb.sqltype("VARCHAR"), "score": duckdb.sqltype("DOUBLE")})
)


def load_rule_set(con: duckdb.DuckDBPyConnection, schema: str = "derived") -> RuleSet:
    """The served version: current_item_similarity and current_popular_items (segment '*')."""
    similarity = con.execute(
        f"select rule_set_version, product_id, similar_product_id, similarity "
        f"from {schema}.current_item_similarity order by product_id, neighbour_rank"
    ).fetchall()
    popular = con.execute(
        f"select rule_set_version, product_id from {schema}.current_popular_items "
        f"where segment = '*' order by popularity_rank"
    ).fetchall()
    versions = {r[0] for r in similarity} | {r[0] for r in popular}
    if len(versions) != 1:
        raise LookupError(f"expected one served rule-set version in {schema}, found {versions}")
    return RuleSet.from_rows(versions.pop(), [r[1:] for r in similarity], [r[1] for r in popular])


def register(
    con: duckdb.DuckDBPyConnection,
    rules: RuleSet | None = None,
    *,
    name: str = FUNCTION,
    schema: str = "derived",
) -> RuleSet:
    """Register (or replace) the function on ``con``; the rule set defaults to the served one."""
    rules = rules if rules is not None else load_rule_set(con, schema)

    def persona_recommend(
        session_items: Sequence[str] | None,
        affinity_items: Sequence[str] | None,
        affinity_weights: Sequence[float] | None,
        k: int | None,
    ) -> list[dict[str, object]]:
        affinities = dict(zip(affinity_items or (), affinity_weights or (), strict=False))
        top = recommend(rules, session_items or (), affinities, 10 if k is None else k)
        return [{"product_id": item, "score": score} for item, score in top]

    with contextlib.suppress(duckdb.InvalidInputException):  # not registered yet
        con.remove_function(name)
    con.create_function(
        name,
        persona_recommend,
        [
            duckdb.list_type(duckdb.sqltype("VARCHAR")),
            duckdb.list_type(duckdb.sqltype("VARCHAR")),
            duckdb.list_type(duckdb.sqltype("DOUBLE")),
            duckdb.sqltype("INTEGER"),
        ],
        RESULT,
        null_handling="special",
        side_effects=False,
    )
    return rules

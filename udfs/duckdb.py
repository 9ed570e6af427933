"""The core as a DuckDB SQL function::

    select persona_recommend(['sku-0001'], list(product_id), list(affinity), 10)
    from derived.interactions where user_id = 'u1';
    -- [{'product_id': 'sku-0042', 'score': 0.83, 'reason': 'similar_to',
    --   'reason_detail': 'sku-0001'}, ...]

Arguments: the session's items, the user's affinity items and their weights (parallel lists;
NULL lists count as empty) and k. ``persona_recommend_with_purchases`` takes, before k, what
the user bought (items, times bought, days since the first and since the latest purchase:
parallel lists) and adds buy-again. DuckDB functions live in a connection, so the serving
process registers them on its connection (``register``) after each retrain.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
from duckdb.func import FunctionNullHandling

from udfs.core import DEFAULT_PARAMS as BLEND
from udfs.core import RuleSet, Scored, recommend_explained

if TYPE_CHECKING:
    from _duckdb._typing import IntoPyType  # the stubs' name for a parameter type

FUNCTION = "persona_recommend"
WITH_PURCHASES = "persona_recommend_with_purchases"
_TEXT, _NUMBER = duckdb.sqltype("VARCHAR"), duckdb.sqltype("DOUBLE")
RESULT = duckdb.list_type(
    duckdb.struct_type(
        {"product_id": _TEXT, "score": _NUMBER, "reason": _TEXT, "reason_detail": _TEXT}
    )
)


def load_rule_set(con: duckdb.DuckDBPyConnection, schema: str = "derived",
                  param: str = "?") -> RuleSet:  # fmt: skip
    """The served version: current_item_similarity and current_popular_items (segment '*').
    ``param``: the connection's placeholder (a Snowflake cursor's is ``%s``: serving/batch.py
    reads the served rule set from Snowflake with this function too)."""
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
    version = versions.pop()
    repurchase: list[tuple[Any, ...]] = []
    params: dict[str, float] = {}
    with contextlib.suppress(duckdb.CatalogException):  # a warehouse built before buy-again
        repurchase = con.execute(
            f"select product_id, repurchase_rate, repurchase_interval_days "
            f"from {schema}.current_item_repurchase"
        ).fetchall()
        found = con.execute(
            f"select parameters_json from {schema}.rule_set_versions "
            f"where rule_set_version = {param}",
            [version],
        ).fetchall()
        blend = json.loads(found[0][0] or "{}") if found else {}
        params = {k: blend[k] for k in BLEND if k in blend}
    return RuleSet.from_rows(
        version, [r[1:] for r in similarity], [r[1] for r in popular], repurchase, params
    )


def _rows(top: list[Scored]) -> list[dict[str, object]]:
    return [
        {"product_id": s.item, "score": s.score, "reason": s.reason, "reason_detail": s.detail}
        for s in top
    ]


def _replace(con: duckdb.DuckDBPyConnection, name: str,
             fn: Callable[..., list[dict[str, object]]],
             args: list[IntoPyType]) -> None:  # fmt: skip
    with contextlib.suppress(duckdb.InvalidInputException):  # not registered yet
        con.remove_function(name)
    con.create_function(
        name, fn, args, RESULT, null_handling=FunctionNullHandling.SPECIAL, side_effects=False
    )


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
        return _rows(
            recommend_explained(rules, session_items or (), affinities, 10 if k is None else k)
        )

    def with_purchases(
        session_items: Sequence[str] | None,
        affinity_items: Sequence[str] | None,
        affinity_weights: Sequence[float] | None,
        purchase_items: Sequence[str] | None,
        purchase_counts: Sequence[int] | None,
        first_days_ago: Sequence[float] | None,
        last_days_ago: Sequence[float] | None,
        k: int | None,
    ) -> list[dict[str, object]]:
        affinities = dict(zip(affinity_items or (), affinity_weights or (), strict=False))
        purchases = {
            i: (int(n), float(f), float(la))
            for i, n, f, la in zip(purchase_items or (), purchase_counts or (),
                                   first_days_ago or (), last_days_ago or (), strict=False)
            if i is not None and n is not None and f is not None and la is not None
        }  # fmt: skip
        top = recommend_explained(
            rules, session_items or (), affinities, 10 if k is None else k, purchases=purchases
        )
        return _rows(top)

    texts, numbers = duckdb.list_type(_TEXT), duckdb.list_type(_NUMBER)
    k_type = duckdb.sqltype("INTEGER")
    _replace(con, name, persona_recommend, [texts, texts, numbers, k_type])
    _replace(con, WITH_PURCHASES if name == FUNCTION else f"{name}_with_purchases", with_purchases,
             [texts, texts, numbers, texts, duckdb.list_type(duckdb.sqltype("BIGINT")), numbers,
              numbers, k_type])  # fmt: skip
    return rules

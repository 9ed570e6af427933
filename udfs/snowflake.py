"""The core deployed into Snowflake as a Snowpark Python UDF.

``deploy`` reads the served rule set (``current_item_similarity``, ``current_popular_items``),
publishes it as one JSON file to a stage under its version (``@PERSONA_RULES/<version>/``),
and (re)registers ``persona_recommend`` with that file as an import. The UDF reads the file
once per warehouse Python process and keeps it; redeploying after a retrain points the
function at the new version's file (older files stay on the stage, for rollback)::

    select persona_recommend(array_construct('sku-0001'), array_agg(product_id),
                             array_agg(affinity), 10)
    from derived.interactions where user_id = 'u1';

Each item comes back with its ``reason`` and ``reason_detail``; ``persona_recommend_with_purchases``
takes what the user bought (items, times, days since the first and the latest purchase) before
k and adds buy-again, as ``udfs.duckdb`` does.

Tested in Snowpark's local testing mode (stage, registration and calls). Only a real account
shows: the permanent function and its grants, the stage upload of a large rule set, the import
read from ``snowflake_import_directory`` in the Python sandbox, and the latency of a call.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udfs import core
from udfs.core import DEFAULT_PARAMS as BLEND
from udfs.core import RuleSet

if TYPE_CHECKING:
    from snowflake.snowpark import Session
    from snowflake.snowpark.types import DataType
    from snowflake.snowpark.udf import UserDefinedFunction

FUNCTION = "persona_recommend"
STAGE = "persona_rules"
RULE_FILE = "rule_set.json"


def session_from_env() -> Session:
    """A session from the environment (key-pair authentication, as profiles.example.yml)."""
    from snowflake.snowpark import Session

    missing = [v for v in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} (see docs/snowflake.md)")
    config: dict[str, Any] = {
        "account": os.environ["SNOWFLAKE_ACCOUNT"],
        "user": os.environ["SNOWFLAKE_USER"],
        "role": os.environ.get("SNOWFLAKE_ROLE", "PERSONA_TRANSFORMER"),
        "warehouse": os.environ.get("SNOWFLAKE_WAREHOUSE", "PERSONA_WH"),
        "database": os.environ.get("SNOWFLAKE_DATABASE", "PERSONA"),
        "schema": os.environ.get("SNOWFLAKE_SCHEMA", "DERIVED"),
        "authenticator": "SNOWFLAKE_JWT",
        "private_key_file": os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH"),
    }
    if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
        config["private_key_file_pwd"] = os.environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
    session: Session = Session.builder.configs(config).create()
    return session


def load_rule_set(session: Session, schema: str = "derived") -> RuleSet:
    """The served version, read with the DataFrame API (no SQL text: local testing has none)."""
    from snowflake.snowpark.exceptions import SnowparkSQLException
    from snowflake.snowpark.functions import col

    similarity = (
        session.table(f"{schema}.current_item_similarity")
        .sort("PRODUCT_ID", "NEIGHBOUR_RANK")
        .collect()
    )
    popular = (
        session.table(f"{schema}.current_popular_items")
        .filter(col("SEGMENT") == "*")
        .sort("POPULARITY_RANK")
        .collect()
    )
    versions = {r["RULE_SET_VERSION"] for r in similarity} | {
        r["RULE_SET_VERSION"] for r in popular
    }
    if len(versions) != 1:
        raise LookupError(f"expected one served rule-set version in {schema}, found {versions}")
    version = versions.pop()
    repurchase: list[tuple[str, float, float | None]] = []
    params: dict[str, float] = {}
    try:  # a warehouse built before buy-again has neither
        repurchase = [
            (r["PRODUCT_ID"], r["REPURCHASE_RATE"], r["REPURCHASE_INTERVAL_DAYS"])
            for r in session.table(f"{schema}.current_item_repurchase").collect()
        ]
        found = (
            session.table(f"{schema}.rule_set_versions")
            .filter(col("RULE_SET_VERSION") == version)
            .collect()
        )
    except SnowparkSQLException:
        found = []
    if found:
        blend = json.loads(found[0]["PARAMETERS_JSON"] or "{}")
        params = {k: blend[k] for k in BLEND if k in blend}
    return RuleSet.from_rows(
        version,
        [(r["PRODUCT_ID"], r["SIMILAR_PRODUCT_ID"], r["SIMILARITY"]) for r in similarity],
        [r["PRODUCT_ID"] for r in popular],
        repurchase,
        params,
    )


def publish(session: Session, rules: RuleSet, stage: str = STAGE) -> str:
    """Upload the rule set to ``@stage/<version>/rule_set.json``; returns that path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / RULE_FILE
        path.write_text(rules.to_json())
        session.file.put(
            str(path), f"@{stage}/{rules.version}", auto_compress=False, overwrite=True
        )
    return f"@{stage}/{rules.version}/{RULE_FILE}"


def make_handler(rule_file: str = RULE_FILE, *, with_purchases: bool = False) -> Any:
    """The UDF body: loads ``rule_file`` from the UDF's imports on first call, then keeps it.
    ``with_purchases``: the 8-argument form (purchases before k)."""
    loaded: dict[str, RuleSet] = {}

    def score(session_items: list[Any], affinity_items: list[Any], affinity_weights: list[Any],
              k: Any, purchases: dict[str, core.Purchase] | None = None,
              ) -> list[dict[str, object]]:  # fmt: skip
        import sys

        rules = loaded.get("rules")
        if rules is None:
            directory = sys._xoptions["snowflake_import_directory"]
            with open(os.path.join(directory, rule_file)) as f:
                rules = loaded["rules"] = core.RuleSet.from_json(f.read())
        affinities = {
            str(i): float(w)
            for i, w in zip(affinity_items or (), affinity_weights or (), strict=False)
            if i is not None and w is not None
        }
        session = [str(i) for i in session_items or () if i is not None]
        top = core.recommend_explained(
            rules, session, affinities, 10 if k is None else int(k), purchases=purchases
        )
        return [{"product_id": s.item, "score": s.score, "reason": s.reason,
                 "reason_detail": s.detail} for s in top]  # fmt: skip

    # Snowpark reads these hints (a NULL argument arrives as None all the same), so they stay
    # the bare `list` it maps to ARRAY (it has no mapping for list[Any]'s Any): mypy is told
    def persona_recommend(
        session_items: list, affinity_items: list, affinity_weights: list,  # type: ignore[type-arg]
        k: int,
    ) -> list:  # type: ignore[type-arg]  # fmt: skip
        return score(session_items, affinity_items, affinity_weights, k)

    def persona_recommend_with_purchases(
        session_items: list, affinity_items: list, affinity_weights: list,  # type: ignore[type-arg]
        purchase_items: list, purchase_counts: list,  # type: ignore[type-arg]
        first_days_ago: list, last_days_ago: list,  # type: ignore[type-arg]
        k: int,
    ) -> list:  # type: ignore[type-arg]  # fmt: skip
        purchases = {
            str(i): (int(n), float(f), float(la))
            for i, n, f, la in zip(purchase_items or (), purchase_counts or (),
                                   first_days_ago or (), last_days_ago or (), strict=False)
            if None not in (i, n, f, la)
        }  # fmt: skip
        return score(session_items, affinity_items, affinity_weights, k, purchases)

    return persona_recommend_with_purchases if with_purchases else persona_recommend


def deploy(
    session: Session,
    rules: RuleSet,
    *,
    stage: str = STAGE,
    name: str = FUNCTION,
    create_stage: bool = True,
    permanent: bool = True,
) -> UserDefinedFunction:
    """Publish ``rules`` and (re)register the UDFs ``name`` and ``name``_with_purchases."""
    import cloudpickle
    from snowflake.snowpark.types import ArrayType, FloatType, IntegerType, StringType

    if create_stage:  # local testing has no session.sql; its stages need no creating
        session.sql(f"create stage if not exists {stage}").collect()
    rule_path = publish(session, rules, stage)
    # the warehouse has no `udfs` package: ship the core's code inside the pickled function
    cloudpickle.register_pickle_by_value(core)
    texts, numbers = ArrayType(StringType()), ArrayType(FloatType())

    def register(handler: Any, udf_name: str, input_types: list[DataType]) -> UserDefinedFunction:
        return session.udf.register(
            handler, name=udf_name, input_types=input_types, return_type=ArrayType(),
            imports=[rule_path], is_permanent=permanent,
            stage_location=f"@{stage}" if permanent else None, replace=True,
        )  # fmt: skip

    register(make_handler(with_purchases=True), f"{name}_with_purchases",
             [texts, texts, numbers, texts, ArrayType(IntegerType()), numbers, numbers,
              IntegerType()])  # fmt: skip
    return register(make_handler(), name, [texts, texts, numbers, IntegerType()])

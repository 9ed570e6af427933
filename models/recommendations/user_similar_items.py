"""One row per user x candidate item: the `similar_to` part of `user_recommendations` (SAR
scoring: the sum over the user's items of affinity x similarity), computed in one compiled
pass per user (`recs.kernels.score_users`) instead of the SQL join and aggregation, which emit
users x items x neighbours rows (the retrain's biggest cost, BENCHMARKS.md). The same rules
as the SQL in user_recommendations.sql:

- a user's first `recs_max_items_per_user` items by affinity are scored, for users with at
  least `recs_min_history_items` items; the neighbours are this retrain's `item_similarity`
  (the pinned `recs_rule_set_version`, else the newest: versions are the retrain's clock);
- items the user interacted with are removed unless they may come back (repeatable_events);
- users whose list this retrain copies from the previous version (user_rule_inputs) are not
  scored;
- each user keeps the top 4 x `recs_top_k` by score (all of those tied at the cut), which is
  all the blend can use; `max_score` is the user's best score before seen items go (the blend
  divides by it); `reason_detail` is the item that contributed most (ties: the smallest
  id; the SQL path's arg_max leaves a tie to the engine).

Cost: users x items x neighbours multiply-adds, each into one row of a per-block scratch as
long as the catalog; each user's candidates are cut with a heap of 4 x `recs_top_k`. Blocks
of users run on every core. DuckDB only (dbt runs Python models in-process there); on
Snowflake, and with `recs_compute: sql`, the SQL path runs and this model is empty.
"""

import numpy as np
import pyarrow as pa

ITEMS = "select distinct product_id from interactions order by product_id"

# users to score: enough history, and not copied from the previous version (user_rule_inputs)
USERS = """
select user_id from interactions
where user_id not in (
    select user_id from user_rule_inputs
    where rule_set_version = {version} and reused_from is not null
)
group by user_id having count(*) >= {min_history}
"""

SCORED = """
with items as (
    select product_id, row_number() over (order by product_id) - 1 as item
    from (select distinct product_id from interactions)
),
users as (
    select user_id, row_number() over (order by user_id) - 1 as usr
    from ({users})
)
select users.usr, items.item, interactions.affinity, interactions.affinity_rank,
       interactions.repeatable_events
from interactions
inner join users using (user_id)
inner join items using (product_id)
order by users.usr, items.item
"""

NEIGHBOURS = """
with items as (
    select product_id, row_number() over (order by product_id) - 1 as item
    from (select distinct product_id from interactions)
)
-- neighbours outside this window's items reach nobody: item_similarity is built from them
select a.item as i, b.item as j, s.similarity
from item_similarity as s
inner join items as a on s.product_id = a.product_id
inner join items as b on s.similar_product_id = b.product_id
where s.rule_set_version = {version}
order by i, j
"""


def _csr(rows, cols, n_rows):
    """The CSR pointers and column indices of (row, col) pairs sorted by row."""
    if len(rows) and (np.diff(rows) < 0).any():
        raise ValueError("user_similar_items: the rows of a CSR matrix must come sorted")
    pointers = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(np.asarray(rows, np.int64), minlength=n_rows), out=pointers[1:])
    return pointers, np.asarray(cols, np.int64)


def model(dbt, session):
    dbt.config(materialized="table")
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("product_id", pa.string()),
            ("score", pa.float64()),
            ("reason_detail", pa.string()),
            ("max_score", pa.float64()),
        ]
    )
    if dbt.config.get("compute") != "python":
        return schema.empty_table()
    from recs.kernels import in_blocks, score_users  # numba: only when this path runs

    min_history = int(dbt.config.get("min_history_items"))
    max_items = int(dbt.config.get("max_items_per_user"))
    cut = 4 * int(dbt.config.get("top_k"))
    interactions = dbt.ref("interactions")
    similarity = dbt.ref("item_similarity")
    dbt.ref("user_rule_inputs").create_view("user_rule_inputs")  # read by name in USERS
    # this retrain's version: the pinned one, else the newest (versions are the run's clock)
    pinned = dbt.config.get("rule_set_version")

    def version(table):
        if pinned:
            return "'" + pinned.replace("'", "''") + "'"
        return f"(select max(rule_set_version) from {table})"

    users = USERS.format(min_history=min_history, version=version("user_rule_inputs"))
    item_ids = interactions.query("interactions", ITEMS).fetchnumpy()["product_id"]
    user_ids = interactions.query("interactions", users + " order by user_id").fetchnumpy()[
        "user_id"
    ]
    n, n_users = len(item_ids), len(user_ids)
    if n_users == 0:
        return schema.empty_table()
    # sorted by user, then item: the rows are the CSR matrices (the reason's tie rule reads a
    # user's items in ascending order)
    rows = interactions.query("interactions", SCORED.format(users=users)).fetchnumpy()
    usr, item = rows["usr"].astype(np.int64), rows["item"].astype(np.int64)
    scored = np.asarray(rows["affinity_rank"]) <= max_items
    seen = np.asarray(rows["repeatable_events"]) == 0
    neighbours = NEIGHBOURS.format(version=version("item_similarity"))
    pairs = similarity.query("item_similarity", neighbours).fetchnumpy()
    arrays = (
        *_csr(usr[scored], item[scored], n_users),
        np.asarray(rows["affinity"], np.float64)[scored],
        *_csr(usr[seen], item[seen], n_users),
        *_csr(pairs["i"], pairs["j"], n),
        np.asarray(pairs["similarity"], np.float64),
    )
    users, items, scores, because, top = in_blocks(
        lambda first, last: score_users(*arrays, first, last, cut), n_users, n
    )
    users_dict, items_dict = pa.array(user_ids, pa.string()), pa.array(item_ids, pa.string())
    return pa.table(
        {
            "user_id": pa.DictionaryArray.from_arrays(pa.array(users, pa.int64()), users_dict),
            "product_id": pa.DictionaryArray.from_arrays(pa.array(items, pa.int64()), items_dict),
            "score": pa.array(scores, pa.float64()),
            "reason_detail": pa.DictionaryArray.from_arrays(
                pa.array(because, pa.int64()), items_dict
            ),
            "max_score": pa.array(top, pa.float64()),
        }
    )

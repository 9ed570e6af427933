"""One row per user x candidate item: the `similar_to` part of `user_recommendations` (SAR
scoring: the sum over the user's items of affinity x similarity), computed with numpy instead
of the SQL join and aggregation, which emit users x items x neighbours rows (the retrain's
biggest cost, BENCHMARKS.md). The same rules as the SQL in user_recommendations.sql:

- a user's first `recs_max_items_per_user` items by affinity are scored, for users with at
  least `recs_min_history_items` items; the neighbours are this retrain's `item_similarity`
  (the pinned `recs_rule_set_version`, else the newest: versions are the retrain's clock);
- items the user interacted with are removed unless they may come back (repeatable_events);
- users whose list this retrain copies from the previous version (user_rule_inputs) are not
  scored;
- each user keeps the top 4 x `recs_top_k` by score (all of those tied at the cut), which is
  all the blend can use; `max_score` is the user's best score before seen items go (the blend
  divides by it); `reason_detail` is the item that contributed most (ties: the smallest id).

Cost: per block of ~`BLOCK_CELLS` / items users (blocks of users with about as many items,
run on every core): the sparse product A·S (users x items x neighbours multiply-adds, in
scipy's C++), a dense scratch as wide as the block's longest candidate list for the cut, and
one pass over the block's neighbour lists for the reasons, through a block x catalog mask
(`BLOCK_CELLS` bytes to 4 x that). DuckDB only (dbt runs Python models in-process there); on
Snowflake, and with `recs_compute: sql`, the SQL path runs and this model is empty.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from scipy import sparse

BLOCK_CELLS = 1_000_000

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
"""

NEIGHBOURS = """
with items as (
    select product_id, row_number() over (order by product_id) - 1 as item
    from (select distinct product_id from interactions)
)
select a.item as i, b.item as j, s.similarity
from item_similarity as s
inner join items as a on s.product_id = a.product_id
inner join items as b on s.similar_product_id = b.product_id
where s.rule_set_version = {version}
order by i, j
"""


def _expand(ptr, idx, items):
    """For each of ``items``, the positions of its neighbours in (``ptr``, ``idx``): (which
    of ``items``, position)."""
    lengths = ptr[items + 1] - ptr[items]
    which = np.repeat(np.arange(len(items)), lengths)
    pos = np.repeat(ptr[items] - np.cumsum(lengths) + lengths, lengths) + np.arange(len(which))
    return which, pos


def _row_max(m):
    """Each row's largest stored value (0 for an empty row)."""
    top = np.zeros(m.shape[0])
    filled = np.diff(m.indptr) > 0
    if filled.any():
        top[filled] = np.maximum.reduceat(m.data, m.indptr[:-1][filled])
    return top


def _block(a, seen, s, cut):
    """One block of users (rows of ``a``, their scored items' affinities, and ``seen``, the
    items they may not get again): (row, item, score, reason item, the row's best score)."""
    n = s.shape[1]
    scores = (a @ s).tocsr()
    top = _row_max(scores)
    rows = np.repeat(np.arange(a.shape[0]), np.diff(scores.indptr))
    cols, values = scores.indices.astype(np.int64), scores.data
    barred = np.zeros(a.shape[0] * n, dtype=bool)  # what each user saw and may not get again
    barred[np.repeat(np.arange(a.shape[0]), np.diff(seen.indptr)) * n + seen.indices] = True
    allowed = ~barred[rows * n + cols]
    rows, cols, values = rows[allowed], cols[allowed], values[allowed]
    lengths = np.bincount(rows, minlength=a.shape[0])
    width = int(lengths.max(initial=0))
    if width > cut:
        # each row's cut-th best, from a dense block as wide as its longest row; every
        # candidate at least as good is kept (ties at the cut)
        # (negated, and the kth from the start: numpy's partition is ~10x faster that way)
        starts = np.cumsum(lengths) - lengths
        padded = np.zeros((a.shape[0], width))
        padded[rows, np.arange(len(rows)) - starts[rows]] = -values
        padded.partition(cut - 1, axis=1)
        threshold = -padded[:, cut - 1]
        keep = values >= threshold[rows]
        rows, cols, values = rows[keep], cols[keep], values[keep]
    # the reason: the user's item that contributed most to each kept (row, item); only the
    # contributions to kept pairs are looked at (a dense mask of the block)
    kept = rows * n + cols
    slot_of = np.zeros(a.shape[0] * n, dtype=np.int32)  # small: the gathers stay in cache
    slot_of[kept] = np.arange(1, len(kept) + 1)
    user_of = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    which, pos = _expand(s.indptr, s.indices, a.indices.astype(np.int64))
    slot = slot_of[user_of[which] * n + s.indices[pos]]
    hit = slot > 0
    slot, which, pos = slot[hit] - 1, which[hit], pos[hit]
    source, part = a.indices[which].astype(np.int64), a.data[which] * s.data[pos]
    # per pair: the biggest part, then the smallest id
    best = np.zeros(len(kept))
    np.maximum.at(best, slot, part)
    won = part == best[slot]
    reason = np.full(len(kept), n, dtype=np.int64)
    np.minimum.at(reason, slot[won], source[won])
    return rows, cols, values, reason, top[rows]


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
    rows = interactions.query("interactions", SCORED.format(users=users)).fetchnumpy()
    usr, item = rows["usr"].astype(np.int64), rows["item"].astype(np.int64)
    repeatable = np.asarray(rows["repeatable_events"]) > 0
    scored = np.asarray(rows["affinity_rank"]) <= max_items
    shape = (n_users, n)
    a = sparse.csr_matrix((np.asarray(rows["affinity"])[scored], (usr[scored], item[scored])),
                          shape=shape)  # fmt: skip
    seen = sparse.csr_matrix((np.ones(int((~repeatable).sum())),
                              (usr[~repeatable], item[~repeatable])), shape=shape)  # fmt: skip
    neighbours = NEIGHBOURS.format(version=version("item_similarity"))
    pairs = similarity.query("item_similarity", neighbours).fetchnumpy()
    s = sparse.csr_matrix((pairs["similarity"], (pairs["i"], pairs["j"])), shape=(n, n))
    # blocks of users with about as many items, so a block's dense scratch is about as wide
    # as its rows need
    by_size = np.argsort(np.diff(a.indptr), kind="stable")
    a, seen = a[by_size], seen[by_size]
    per_block = max(64, BLOCK_CELLS // max(n, 1))

    def block(first):
        last = min(first + per_block, n_users)
        rows_, cols, values, reason, top = _block(a[first:last], seen[first:last], s, cut)
        return by_size[rows_ + first], cols, values, reason, top

    # numpy and scipy let go of the GIL in these loops: blocks run on the cores, as SQL would
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = list(pool.map(block, range(0, n_users, per_block)))
    if not parts:
        return schema.empty_table()
    users, items, scores, because, top = (np.concatenate(p) for p in zip(*parts, strict=True))
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

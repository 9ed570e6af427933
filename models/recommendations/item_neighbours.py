"""One row per item x neighbour: co-occurrence similarity (`recs_similarity`: jaccard, lift or
cosine), computed with scipy's sparse product X'X over the binary user x item matrix instead
of the SQL self-join, which emits a row per pair per user (users x `recs_max_items_per_user`^2
rows, the retrain's second cost). The same rules as item_similarity.sql's SQL: a user's first
`recs_max_items_per_user` items by affinity; pairs seen by fewer than `recs_min_cooccurrence`
users dropped; each item's top `recs_neighbours` by similarity, then co-occurrence, then the
neighbour's id. `item_similarity` copies these rows into this retrain's version.

Cost: the sparse product (the same multiply-adds as the self-join's rows, in C++), then per
block of items a dense scratch as wide as the block's longest row. DuckDB only; on Snowflake,
with `recs_compute: sql` and with `recs_similarity: ease` this model is empty.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from scipy import sparse

BLOCK_CELLS = 8_000_000

ROWS = """
with items as (
    select product_id, row_number() over (order by product_id) - 1 as item
    from (select distinct product_id from interactions)
),
users as (
    select user_id, row_number() over () - 1 as usr
    from (select distinct user_id from interactions)
)
select users.usr, items.item
from interactions
inner join users using (user_id)
inner join items using (product_id)
where interactions.affinity_rank <= {max_items}
"""


def _similarity(metric, c, a, b):
    if metric == "jaccard":
        return c / (a + b - c)
    if metric == "lift":
        return c / (a * b)
    return c / np.sqrt(a * b)


def _block(pairs, counts, first, metric, min_count, top):
    """Neighbour rows of items first.. (the rows of ``pairs``): (item, neighbour, similarity,
    co-occurrence, rank)."""
    pairs.setdiag(0)
    pairs.eliminate_zeros()
    pairs.data[pairs.data < min_count] = 0
    pairs.eliminate_zeros()
    lengths = np.diff(pairs.indptr)
    rows = np.repeat(np.arange(pairs.shape[0]), lengths)
    cols, c = pairs.indices.astype(np.int64), pairs.data.astype(np.int64)
    sim = _similarity(metric, c.astype(np.float64), counts[rows + first], counts[cols])
    width = int(lengths.max(initial=0))
    if width > top:
        # each row's top-th similarity: every pair at least as similar goes to the exact sort
        # (negated, and the kth from the start: numpy's partition is ~10x faster that way)
        padded = np.zeros((pairs.shape[0], width))
        padded[rows, np.arange(len(rows)) - pairs.indptr[rows]] = -sim
        padded.partition(top - 1, axis=1)
        threshold = -padded[:, top - 1]
        keep = sim >= threshold[rows]
        rows, cols, c, sim = rows[keep], cols[keep], c[keep], sim[keep]
    order = np.lexsort((cols, -c, -sim, rows))
    rows, cols, c, sim = rows[order], cols[order], c[order], sim[order]
    starts = np.searchsorted(rows, rows, side="left")
    rank = np.arange(len(rows)) - starts + 1
    keep = rank <= top
    return rows[keep] + first, cols[keep], sim[keep], c[keep], rank[keep]


def model(dbt, session):
    dbt.config(materialized="table")
    schema = pa.schema(
        [
            ("product_id", pa.string()),
            ("neighbour_rank", pa.int64()),
            ("similar_product_id", pa.string()),
            ("similarity", pa.float64()),
            ("cooccurrence_users", pa.int64()),
        ]
    )
    metric = dbt.config.get("similarity")
    if dbt.config.get("compute") != "python" or metric not in ("jaccard", "lift", "cosine"):
        return schema.empty_table()
    interactions = dbt.ref("interactions")
    item_ids = interactions.query(
        "interactions", "select distinct product_id from interactions order by product_id"
    ).fetchnumpy()["product_id"]
    rows = interactions.query(
        "interactions", ROWS.format(max_items=int(dbt.config.get("max_items_per_user")))
    ).fetchnumpy()
    n = len(item_ids)
    if n == 0:
        return schema.empty_table()
    usr, item = rows["usr"].astype(np.int64), rows["item"].astype(np.int64)
    x = sparse.csr_matrix(
        (np.ones(len(usr), dtype=np.int64), (usr, item)), shape=(int(usr.max()) + 1, n)
    )
    xt = x.T.tocsr()
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    top = int(dbt.config.get("neighbours"))
    min_count = int(dbt.config.get("min_cooccurrence"))
    per_block = max(16, BLOCK_CELLS // n)

    def block(first):
        pairs = (xt[first : first + per_block] @ x).tocsr()
        return _block(pairs, counts, first, metric, min_count, top)

    # numpy and scipy let go of the GIL in these loops: blocks run on the cores, as SQL would
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = list(pool.map(block, range(0, n, per_block)))
    source, target, sim, c, rank = (np.concatenate(p) for p in zip(*parts, strict=True))
    ids = pa.array(item_ids, pa.string())
    return pa.table(
        {
            "product_id": pa.DictionaryArray.from_arrays(pa.array(source, pa.int64()), ids),
            "neighbour_rank": pa.array(rank, pa.int64()),
            "similar_product_id": pa.DictionaryArray.from_arrays(pa.array(target, pa.int64()), ids),
            "similarity": pa.array(sim, pa.float64()),
            "cooccurrence_users": pa.array(c, pa.int64()),
        }
    )

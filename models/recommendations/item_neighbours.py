"""One row per item x neighbour: co-occurrence similarity (`recs_similarity`: jaccard, lift or
cosine), computed in one compiled pass per item (`recs.kernels.item_neighbours`: X'X over the
binary user x item matrix, then the item's best) instead of the SQL self-join, which emits a
row per pair per user (users x `recs_max_items_per_user`^2 rows, the retrain's second cost).
The same rules as item_similarity.sql's SQL: a user's first `recs_max_items_per_user` items
by affinity; pairs seen by fewer than `recs_min_cooccurrence` users dropped; each item's top
`recs_neighbours` by similarity, then co-occurrence, then the neighbour's id.
`item_similarity` copies these rows into this retrain's version.

Cost: the same additions as the self-join's rows, each into one row of a per-block scratch
as long as the catalog, then a heap of `recs_neighbours` per item. DuckDB only; on Snowflake,
with `recs_compute: sql` and with `recs_similarity: ease` this model is empty.
"""

import numpy as np
import pyarrow as pa
from scipy import sparse

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
    if dbt.config.get("compute") != "python":
        return schema.empty_table()
    from recs.kernels import METRICS, in_blocks, item_neighbours  # numba: only on this path

    if metric not in METRICS:  # ease: item_weights_ease
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
    arrays = (
        x.indptr.astype(np.int64), x.indices.astype(np.int64),
        xt.indptr.astype(np.int64), xt.indices.astype(np.int64), counts,
    )  # fmt: skip
    code = METRICS.index(metric)
    source, target, sim, c, rank = in_blocks(
        lambda first, last: item_neighbours(*arrays, first, last, code, min_count, top), n, n
    )
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

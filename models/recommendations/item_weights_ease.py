"""One row per item x neighbour: EASE item-to-item weights (Steck, "Embarrassingly Shallow
Autoencoders", WWW 2019), learned in closed form: with G = X'X + lambda*I over the binary
user x item matrix X, P = G^-1, the weight of item i for item j is -P[i,j] / P[j,j] (0 on the
diagonal). A user's score for j is the sum of their items' weights for j: the same scoring as
item_similarity's, so these weights are served as an `item_similarity` rule set
(`recs_similarity: ease`). Each item keeps its top `recs_neighbours` positive weights.

Cost: the co-occurrence counts are one self-join in the warehouse (as for jaccard, bounded by
`recs_max_items_per_user`); the inversion is dense, items^3 / 3 flops and items^2 x 8 bytes,
so only the `recs_ease_max_items` most-used items are modelled (5,000 items: 200 MB, seconds).
Enabled only when `recs_similarity` is `ease` (dbt_project.yml). Runs on DuckDB, where dbt
runs Python models in-process.
"""

import numpy as np
import pyarrow as pa

PAIRS = """
with users_items as (
    select user_id, product_id from interactions where affinity_rank <= {max_items_per_user}
),
kept as (
    select product_id, count(*) as users
    from users_items group by product_id
    order by users desc, product_id limit {max_items}
),
modelled as (
    select user_id, product_id from users_items semi join kept using (product_id)
)
select a.product_id as i, b.product_id as j, count(*) as c
from modelled as a inner join modelled as b on a.user_id = b.user_id
group by all
"""


def model(dbt, session):
    dbt.config(materialized="table")
    lam = float(dbt.config.get("ease_lambda"))
    neighbours = int(dbt.config.get("neighbours"))
    pairs = (
        dbt.ref("interactions")
        .query(
            "interactions",
            PAIRS.format(
                max_items_per_user=int(dbt.config.get("max_items_per_user")),
                max_items=int(dbt.config.get("ease_max_items")),
            ),
        )
        .fetchnumpy()
    )
    items, codes = np.unique(np.concatenate([pairs["i"], pairs["j"]]), return_inverse=True)
    n = len(items)
    i, j = codes[: len(pairs["i"])], codes[len(pairs["i"]) :]
    gram = np.zeros((n, n))
    gram[i, j] = pairs["c"]
    cooccurrence = gram.copy()
    gram[np.diag_indices(n)] += lam
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)[np.newaxis, :]  # column j divided by -P[j,j]
    weights[np.diag_indices(n)] = 0.0
    top = min(neighbours, max(n - 1, 0))
    rows_i, rows_j, rows_w, rows_c, ranks = [], [], [], [], []
    if top > 0:
        best = np.argpartition(-weights, top - 1, axis=1)[:, :top]
        for source in range(n):
            chosen = best[source][np.argsort(-weights[source, best[source]], kind="stable")]
            chosen = chosen[weights[source, chosen] > 0]
            rows_i.append(np.full(len(chosen), source))
            rows_j.append(chosen)
            rows_w.append(weights[source, chosen])
            rows_c.append(cooccurrence[source, chosen])
            ranks.append(np.arange(1, len(chosen) + 1))
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.array([], dtype)  # noqa: E731
    source_items, target_items = cat(rows_i, np.int64), cat(rows_j, np.int64)
    return pa.table(
        {
            "product_id": pa.array(items[source_items].astype(str) if n else [], pa.string()),
            "neighbour_rank": pa.array(cat(ranks, np.int64), pa.int64()),
            "similar_product_id": pa.array(
                items[target_items].astype(str) if n else [], pa.string()
            ),
            "similarity": pa.array(cat(rows_w, np.float64), pa.float64()),
            "cooccurrence_users": pa.array(cat(rows_c, np.float64).astype(np.int64), pa.int64()),
        }
    )

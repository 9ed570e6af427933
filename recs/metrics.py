"""Ranking metrics as Microsoft Recommenders' ``python_evaluation`` defines them.

For the users found both in the truth and in the predictions ("common users", n of them),
with each user's predictions cut to the top ``k``, hits at 1-based ranks r_1 < r_2 < ...:

- precision@k = mean over common users of hits / k
- recall@k    = mean over common users of hits / |truth|
- map         = mean over common users of (sum_j j / r_j) / |truth|; Recommenders' ``map``
  (named ``map_at_k`` before 1.2), the MAP of its published benchmarks (SAR on MovieLens:
  0.1106). Its newer ``map_at_k`` divides by min(|truth|, k) instead: reported as ``map@k``.
- ndcg@k      = mean over the truth's users of DCG / IDCG with binary relevance,
  DCG = sum 1/ln(1 + r_j), IDCG = sum_{i<=min(|truth|,k)} 1/ln(1 + i); a user of the
  truth without predictions counts 0 (Recommenders merges the hits into the whole truth).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set


def ranking_metrics(
    truth: Mapping[str, Set[str]], predicted: Mapping[str, Sequence[str]], k: int
) -> dict[str, float]:
    """precision@k, recall@k, map, map@k, ndcg@k (keys with k substituted)."""
    common = [u for u in truth if u in predicted and truth[u]]
    precision = recall = average_precision = average_precision_k = ndcg = 0.0
    for user in common:
        relevant = truth[user]
        hits = [rank for rank, item in enumerate(predicted[user][:k], 1) if item in relevant]
        precision += len(hits) / k
        recall += len(hits) / len(relevant)
        reciprocal = sum(j / rank for j, rank in enumerate(hits, 1))
        average_precision += reciprocal / len(relevant)
        average_precision_k += reciprocal / min(len(relevant), k)
        if hits:
            dcg = sum(1 / math.log(1 + rank) for rank in hits)
            idcg = sum(1 / math.log(1 + i) for i in range(1, min(len(relevant), k) + 1))
            ndcg += dcg / idcg
    n = len(common)
    truth_users = sum(1 for u in truth if truth[u])
    return {
        "map": average_precision / n if n else 0.0,
        f"map@{k}": average_precision_k / n if n else 0.0,
        f"ndcg@{k}": ndcg / truth_users if truth_users else 0.0,
        f"precision@{k}": precision / n if n else 0.0,
        f"recall@{k}": recall / n if n else 0.0,
    }

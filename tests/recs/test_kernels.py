"""The compiled scoring loop (`recs.kernels.score_users`) against the rules stated plainly, on
random users and similarity lists: small integers, so parts and sums tie often and are exact,
which puts the tie rules (the cut, the reason) to work."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from recs.kernels import METRICS, compiled, item_neighbours, score_users

ITEMS = 12


def plain(affinity: dict, seen: dict, similar: dict, cut: int) -> set[tuple]:
    """user_recommendations.sql's similar items, one user at a time."""
    out = set()
    for user, items in affinity.items():
        total: dict[int, float] = defaultdict(float)
        parts: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for item, weight in items.items():
            for neighbour, similarity in similar.get(item, {}).items():
                total[neighbour] += weight * similarity
                parts[neighbour].append((weight * similarity, item))
        if not total:
            continue
        top = max(total.values())
        kept = {j: v for j, v in total.items() if j not in seen.get(user, set())}
        ranked = sorted(kept.values(), reverse=True)
        threshold = ranked[cut - 1] if len(ranked) > cut else -np.inf
        for j, v in kept.items():
            if v >= threshold:
                reason = min(parts[j], key=lambda p: (-p[0], p[1]))[1]
                out.add((user, j, v, reason, top))
    return out


def csr(rows: dict, n_rows: int) -> sparse.csr_matrix:
    cells = [(r, c, v) for r, cols in rows.items() for c, v in cols.items()]
    r, c, v = zip(*cells, strict=True) if cells else ((), (), ())
    return sparse.csr_matrix(
        (np.array(v, dtype=np.float64), (np.array(r, dtype=np.int64), np.array(c, dtype=np.int64))),
        shape=(n_rows, ITEMS),
    )


def as64(m: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """A CSR matrix's pointers and indices as the models pass them."""
    return m.indptr.astype(np.int64), m.indices.astype(np.int64)


item = st.integers(0, ITEMS - 1)
weights = st.dictionaries(item, st.integers(-2, 4).map(float), max_size=6)
history = st.dictionaries(item, st.integers(1, 4).map(float), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    affinity=st.dictionaries(st.integers(0, 5), history, max_size=6),
    similar=st.dictionaries(item, weights, max_size=ITEMS),
    seen=st.dictionaries(st.integers(0, 5), st.sets(item, max_size=4), max_size=6),
    cut=st.integers(1, 5),
)
def test_scores_cut_and_reasons_follow_the_rules(affinity, similar, seen, cut) -> None:
    a, s = csr(affinity, 6), csr(similar, ITEMS)
    barred = csr({u: dict.fromkeys(items, 1.0) for u, items in seen.items()}, 6)
    a.sort_indices()
    s.sort_indices()
    got = score_users(*as64(a), a.data, *as64(barred), *as64(s), s.data, 0, 6, cut)
    # the plain rules read what s holds (explicit zeros too)
    held = {i: {int(j): float(v) for j, v in zip(s[i].indices, s[i].data, strict=True)}
            for i in range(ITEMS)}  # fmt: skip
    want = plain(affinity, seen, held, cut)
    assert set(zip(*(x.tolist() for x in got), strict=True)) == want


def test_blocks_cover_only_their_users() -> None:
    a = csr({0: {1: 1.0}, 1: {2: 1.0}, 2: {1: 2.0}}, 3)
    s = csr({1: {3: 1.0}, 2: {4: 1.0}}, ITEMS)
    empty = csr({}, 3)
    users, items, scores, _, _ = score_users(
        *as64(a), a.data, *as64(empty), *as64(s), s.data, 1, 3, 5
    )
    assert users.tolist() == [1, 2] and items.tolist() == [4, 3] and scores.tolist() == [1.0, 2.0]


def plain_neighbours(baskets: dict, metric: str, min_count: int, top: int) -> list[tuple]:
    """item_similarity.sql's neighbours, one pair at a time."""
    users_of: dict[int, set] = defaultdict(set)
    for user, items in baskets.items():
        for i in items:
            users_of[i].add(user)
    out = []
    for i in range(ITEMS):
        found = []
        for j in range(ITEMS):
            c = len(users_of[i] & users_of[j])
            if j == i or c < max(min_count, 1):
                continue
            a, b = float(len(users_of[i])), float(len(users_of[j]))
            sim = {"jaccard": c / (a + b - c), "lift": c / (a * b), "cosine": c / np.sqrt(a * b)}
            found.append((sim[metric], c, j))
        found.sort(key=lambda f: (-f[0], -f[1], f[2]))
        out += [(i, j, s, c, r) for r, (s, c, j) in enumerate(found[:top], start=1)]
    return out


@settings(max_examples=300, deadline=None)
@given(
    baskets=st.dictionaries(st.integers(0, 30), st.sets(item, min_size=1, max_size=6)),
    metric=st.sampled_from(METRICS),
    min_count=st.integers(1, 3),
    top=st.integers(1, 6),
    blocks=st.integers(1, 5),
)
def test_neighbours_follow_the_rules_in_any_blocks(baskets, metric, min_count, top, blocks) -> None:
    x = csr({u: dict.fromkeys(items, 1.0) for u, items in baskets.items()}, 31)
    xt = x.T.tocsr()
    counts = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
    per_block = -(-ITEMS // blocks)
    got = []
    for first in range(0, ITEMS, per_block):
        last = min(first + per_block, ITEMS)
        parts = item_neighbours(*as64(x), *as64(xt), counts, first, last,
                                METRICS.index(metric), min_count, top)  # fmt: skip
        got += list(zip(*(p.tolist() for p in parts), strict=True))
    assert got == plain_neighbours(baskets, metric, min_count, top)


def test_a_user_with_more_ties_than_the_output_holds_keeps_them_all() -> None:
    # 39 candidates tied at a cut of 1: more rows than the output's first allocation (16)
    n = 40
    ptr = lambda *p: np.array(p, dtype=np.int64)  # noqa: E731
    a = (ptr(0, 1), ptr(0), np.ones(1))
    seen = (ptr(0, 0), ptr())
    s = (ptr(0, n - 1, *[n - 1] * (n - 1)), np.arange(1, n, dtype=np.int64), np.ones(n - 1))
    users, items, scores, reasons, _ = score_users(*a, *seen, *s, 0, 1, 1)
    assert sorted(items.tolist()) == list(range(1, n)) and set(reasons.tolist()) == {0}
    assert users.tolist() == [0] * (n - 1) and scores.tolist() == [1.0] * (n - 1)
    assert len(score_users(*a, *seen, *s, 0, 1, 0)[0]) == 0  # a cut of 0 keeps nothing


def test_without_a_place_for_the_cache_each_run_compiles() -> None:
    namespace: dict = {}
    exec("def plus_one(x):\n    return x + 1", namespace)  # no file: numba can cache nothing
    assert compiled(namespace["plus_one"])(41) == 42

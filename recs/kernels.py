"""The rule sets' inner loops, compiled (numba), for the DuckDB Python models.

dbt-duckdb runs Python models in the dbt process, so on DuckDB `models/recommendations/*.py`
import these; they never run inside a warehouse (Snowflake runs the same rules in SQL).
Compiled because the work is users x items x neighbours multiply-adds with a running best
per pair: one pass here, where numpy needed a sparse product plus ten passes of masks and
gathers over every (user, item, neighbour) triple (BENCHMARKS.md, the 10M retrain). The machine
code is cached beside this file (or in the user's cache, or `NUMBA_CACHE_DIR`), so only the
first run on a machine pays for compiling; where none of those is writable, each run compiles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

# numba reads none of these (it types each call's arrays itself); they are for mypy and readers
Ints = npt.NDArray[np.integer[Any]]  # CSR index arrays: int32 or int64, as scipy builds them
Floats = npt.NDArray[np.floating[Any]]
F = TypeVar("F", bound=Callable[..., Any])


def compiled(function: F) -> F:
    """``function`` compiled without the GIL (callers run blocks on threads), its machine code
    cached; compiled on each run instead where numba finds nowhere to write the cache (a
    read-only install, no home directory), which it reports by raising at decoration."""
    try:
        return cast(F, njit(nogil=True, cache=True)(function))  # a Dispatcher calls as F
    except RuntimeError:
        return cast(F, njit(nogil=True)(function))


# blocks per core, to even out the cores; each at least CATALOG_SHARE of the catalog's size, so
# that a block's catalog-long scratch stays small beside its work
BLOCKS_PER_CORE, CATALOG_SHARE = 16, 1 / 64


def in_blocks(
    loop: Callable[[int, int], tuple[npt.NDArray[Any], ...]], total: int, catalog: int
) -> tuple[npt.NDArray[Any], ...]:
    """``loop(first, last)`` over rows 0..``total`` (> 0) in blocks run on every core (the loops
    let go of the GIL, as SQL would use the cores), the blocks' arrays joined in order."""
    workers = os.cpu_count() or 1
    per_block = max(1, -(-total // (BLOCKS_PER_CORE * workers)), int(catalog * CATALOG_SHARE))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda first: loop(first, min(first + per_block, total)),
                              range(0, total, per_block)))  # fmt: skip
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


@compiled
def score_users(
    a_ptr: Ints, a_idx: Ints, a_val: Floats, seen_ptr: Ints, seen_idx: Ints,
    s_ptr: Ints, s_idx: Ints, s_val: Floats, first: int, last: int, cut: int,
) -> tuple[Ints, Ints, Floats, Ints, Floats]:  # fmt: skip
    """SAR scores of users ``first``..``last`` (rows of the CSR matrix ``a``: their scored items'
    affinities, indices ascending) over the CSR similarity ``s``: (user, item, score, reason
    item, the user's best score) for each user's candidates not in ``seen`` that rank at most
    ``cut`` by score (all of those tied at the cut).

    The rules of user_recommendations.sql's SQL: a candidate is any item a neighbour list of the
    user's items reaches (its score may be 0); the best score is taken before seen items go;
    the reason is the item whose part (affinity x similarity) is largest, the smallest on a tie
    (rows are visited in ascending order, so the first largest wins; the SQL's arg_max leaves
    a tie to the engine). Sums are added in the order of scipy's sparse product: the user's
    items, then each one's neighbours, as stored.
    ``nogil``: callers run blocks of users on threads.
    """
    n = len(s_ptr) - 1
    if cut < 1:
        last = first  # nothing ranks at most 0
    # per item, for the current user: whose it is (a user stamp), sum, best part, reason;
    # one row per item keeps an update to one cache line
    state = np.full((n, 4), -1.0)
    barred = np.full(n, -1, np.int64)
    touched = np.empty(n, np.int64)
    candidates = np.empty(n, np.int64)
    values = np.empty(n)
    heap = np.empty(max(cut, 1))
    size = max(16, (last - first) * (cut + 8))
    users = np.empty(size, np.int64)
    items = np.empty(size, np.int64)
    reasons = np.empty(size, np.int64)
    scores = np.empty(size)
    tops = np.empty(size)
    m = 0
    for u in range(first, last):
        stamp = float(u)
        t = 0
        for p in range(a_ptr[u], a_ptr[u + 1]):
            i = a_idx[p]
            source = float(i)
            affinity = a_val[p]
            for q in range(s_ptr[i], s_ptr[i + 1]):
                j = s_idx[q]
                part = affinity * s_val[q]
                if state[j, 0] != stamp:
                    state[j, 0] = stamp
                    state[j, 1] = part
                    state[j, 2] = part
                    state[j, 3] = source
                    touched[t] = j
                    t += 1
                else:
                    state[j, 1] += part
                    if part > state[j, 2]:
                        state[j, 2] = part
                        state[j, 3] = source
        if t == 0:
            continue
        for p in range(seen_ptr[u], seen_ptr[u + 1]):
            barred[seen_idx[p]] = u
        top = state[touched[0], 1]
        c = 0
        for k in range(t):
            j = touched[k]
            top = max(top, state[j, 1])
            if barred[j] != u:
                candidates[c] = j
                values[c] = state[j, 1]
                c += 1
        threshold = -np.inf
        if c > cut:
            threshold = _kth_largest(values, c, cut, heap)
        if m + c > size:
            size = max(2 * size, m + c)
            users, items, reasons = _grown(users, size), _grown(items, size), _grown(reasons, size)
            scores, tops = _grown(scores, size), _grown(tops, size)
        for k in range(c):
            if values[k] >= threshold:
                j = candidates[k]
                users[m] = u
                items[m] = j
                scores[m] = values[k]
                reasons[m] = int(state[j, 3])
                tops[m] = top
                m += 1
    return users[:m], items[:m], scores[:m], reasons[:m], tops[:m]


@compiled
def _kth_largest(values: Floats, c: int, k: int, heap: Floats) -> float:
    """The k-th largest of ``values[:c]`` (c > k): a min-heap of the k largest so far, so most
    values cost one comparison (a full partition of each user's candidates cost more than
    scoring them)."""
    for x in range(k):
        v = values[x]
        pos = x
        while pos > 0:
            parent = (pos - 1) >> 1
            if heap[parent] <= v:
                break
            heap[pos] = heap[parent]
            pos = parent
        heap[pos] = v
    for x in range(k, c):
        v = values[x]
        if v <= heap[0]:
            continue
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= k:
                break
            if child + 1 < k and heap[child + 1] < heap[child]:
                child += 1
            if heap[child] >= v:
                break
            heap[pos] = heap[child]
            pos = child
        heap[pos] = v
    kth: float = heap[0]
    return kth


@compiled
def _grown(array: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
    bigger = np.empty(size, array.dtype)
    bigger[: len(array)] = array
    return bigger


METRICS = ("jaccard", "lift", "cosine")


@compiled
def item_neighbours(
    x_ptr: Ints, x_idx: Ints, xt_ptr: Ints, xt_idx: Ints, counts: Floats,
    first: int, last: int, metric: int, min_count: int, top: int,
) -> tuple[Ints, Ints, Floats, Ints, Ints]:  # fmt: skip
    """Each of items ``first``..``last``'s ``top`` neighbours by co-occurrence similarity:
    (item, neighbour, similarity, co-occurrence, rank), from the binary user x item matrix
    ``x`` (CSR) and its transpose ``xt``; ``counts`` is each item's user count, ``metric`` an
    index into METRICS.

    The rules of item_similarity.sql's SQL: pairs seen by fewer than ``min_count`` users go;
    neighbours rank by similarity, then co-occurrence, then the smaller neighbour (a heap of
    the ``top`` best in that order, then an insertion sort of those few).
    """
    n = len(xt_ptr) - 1
    together = np.zeros(n, np.int64)
    stamp = np.full(n, -1, np.int64)
    touched = np.empty(n, np.int64)
    best_j = np.empty(max(top, 1), np.int64)
    best_c = np.empty(max(top, 1), np.int64)
    best_s = np.empty(max(top, 1))
    size = max(16, (last - first) * top)
    items = np.empty(size, np.int64)
    neighbours = np.empty(size, np.int64)
    similarity = np.empty(size)
    cooccurrence = np.empty(size, np.int64)
    rank = np.empty(size, np.int64)
    m = 0
    for i in range(first, last):
        t = 0
        for p in range(xt_ptr[i], xt_ptr[i + 1]):
            u = xt_idx[p]
            for q in range(x_ptr[u], x_ptr[u + 1]):
                j = x_idx[q]
                if stamp[j] != i:
                    stamp[j] = i
                    together[j] = 1
                    touched[t] = j
                    t += 1
                else:
                    together[j] += 1
        kept = 0
        for k in range(t):
            j = touched[k]
            c = together[j]
            if j == i or c < min_count:
                continue
            a, b = counts[i], counts[j]
            if metric == 0:
                sim = c / (a + b - c)
            elif metric == 1:
                sim = c / (a * b)
            else:
                sim = c / np.sqrt(a * b)
            if kept < top:
                _sift_up(best_s, best_c, best_j, kept, sim, c, j)
                kept += 1
            elif _before(sim, c, j, best_s[0], best_c[0], best_j[0]):
                _sift_down(best_s, best_c, best_j, kept, sim, c, j)
        # the heap's root is the worst kept: sort the kept best first
        for x in range(1, kept):
            s_, c_, j_ = best_s[x], best_c[x], best_j[x]
            y = x - 1
            while y >= 0 and _before(s_, c_, j_, best_s[y], best_c[y], best_j[y]):
                best_s[y + 1], best_c[y + 1], best_j[y + 1] = best_s[y], best_c[y], best_j[y]
                y -= 1
            best_s[y + 1], best_c[y + 1], best_j[y + 1] = s_, c_, j_
        for x in range(kept):
            items[m] = i
            neighbours[m] = best_j[x]
            similarity[m] = best_s[x]
            cooccurrence[m] = best_c[x]
            rank[m] = x + 1
            m += 1
    return items[:m], neighbours[:m], similarity[:m], cooccurrence[:m], rank[:m]


@compiled
def _before(s1: float, c1: int, j1: int, s2: float, c2: int, j2: int) -> bool:
    """Whether neighbour 1 ranks before neighbour 2."""
    if s1 != s2:
        return s1 > s2
    if c1 != c2:
        return c1 > c2
    return j1 < j2


@compiled
def _sift_up(hs: Floats, hc: Ints, hj: Ints, pos: int, s: float, c: int, j: int) -> None:
    """Add (s, c, j) at ``pos`` to the heap whose root ranks last."""
    while pos > 0:
        parent = (pos - 1) >> 1
        if not _before(hs[parent], hc[parent], hj[parent], s, c, j):
            break
        hs[pos], hc[pos], hj[pos] = hs[parent], hc[parent], hj[parent]
        pos = parent
    hs[pos], hc[pos], hj[pos] = s, c, j


@compiled
def _sift_down(hs: Floats, hc: Ints, hj: Ints, size: int, s: float, c: int, j: int) -> None:
    """Replace the root (the last ranked) with (s, c, j)."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _before(
            hs[child], hc[child], hj[child], hs[child + 1], hc[child + 1], hj[child + 1]
        ):
            child += 1
        if not _before(s, c, j, hs[child], hc[child], hj[child]):
            break
        hs[pos], hc[pos], hj[pos] = hs[child], hc[child], hj[child]
        pos = child
    hs[pos], hc[pos], hj[pos] = s, c, j

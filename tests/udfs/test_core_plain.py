"""The fast scoring path against the rules stated plainly.

``recommend_explained`` keeps only the best ``k`` similar candidates, works out the detail of
the items it returns only, and may start from kept affinity sums. ``plainly`` below is the
straightforward statement it replaced (every candidate scored, its detail tracked, everything
sorted): on any rule set and context both give the same list. Weights and similarities are
dyadic (0.5, 0.25, ...), so sums are exact whatever their order and ties are frequent: the
tie-breaks are compared too, not only the order of distinct scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.core import (
    DEFAULT_PARAMS,
    Purchase,
    RuleSet,
    Scored,
    affinity_weights,
    buy_again_score,
    recommend_explained,
    similarity_sums,
)


def plainly(rules: RuleSet, session_items: Sequence[str], affinities: Mapping[str, float],
            k: int, *, purchases: Mapping[str, Purchase], exclude_seen: bool) -> list[Scored]:  # fmt: skip
    context: dict[str, float] = {}
    for item, weight in affinities.items():
        if weight:
            context[item] = context.get(item, 0.0) + float(weight)
    for item in session_items:
        context[item] = context.get(item, 0.0) + 1.0
    similar: dict[str, float] = {}
    because: dict[str, tuple[float, str]] = {}
    for item, weight in context.items():
        for neighbour, similarity in rules.neighbours.get(item, {}).items():
            part = weight * similarity
            similar[neighbour] = similar.get(neighbour, 0.0) + part
            top = because.get(neighbour)
            if top is None or part > top[0] or (part == top[0] and item < top[1]):
                because[neighbour] = (part, item)
    w = float(rules.params["buy_again_weight"])
    horizon = float(rules.params["buy_again_horizon_days"])
    half_life = float(rules.params["buy_again_half_life_days"])
    bought = {i: p for i, p in purchases.items() if p[0] > 0}
    best = max(similar.values(), default=0.0)
    candidates: dict[str, tuple[float, Scored]] = {}
    if best > 0:
        for item, score in similar.items():
            candidates[item] = (max(1 - w, 1e-6) * score / best,
                                Scored(item, score, "similar_to", because[item][1]))  # fmt: skip
    raw = {i: buy_again_score(p, *rules.repurchase[i], horizon, half_life)
           for i, p in bought.items() if i in rules.repurchase}  # fmt: skip
    top_again = max(raw.values(), default=0.0)
    for item, value in raw.items():
        score = value / top_again if top_again > 0 else 0.0
        if score > 0 and (item not in candidates or w * score > candidates[item][0]):
            candidates[item] = (w * score, Scored(item, score, "buy_again", None))
    excluded = (set(context) | set(purchases)) - set(bought) if exclude_seen else set()
    ranked = [s for _, s in sorted(((r, s) for i, (r, s) in candidates.items()
                                    if i not in excluded), key=lambda p: (-p[0], p[1].item))]  # fmt: skip
    ranked = ranked[:k]
    taken = excluded | {s.item for s in ranked}
    for item in rules.popular:
        if len(ranked) < k and item not in taken:
            ranked.append(Scored(item, 0.0, "popular_in_segment", rules.segment))
            taken.add(item)
    return ranked


ITEMS = list("ABCDEFGHIJ")
DYADIC = st.sampled_from([0.125, 0.25, 0.5, 0.75, 1.0, 2.0])


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    pairs = draw(st.lists(st.tuples(st.sampled_from(ITEMS), st.sampled_from(ITEMS),
                                    st.sampled_from([-0.5, 0.125, 0.25, 0.5, 1.0])),
                          max_size=40))  # fmt: skip
    repurchase = draw(st.dictionaries(st.sampled_from(ITEMS),
                                      st.tuples(st.sampled_from([0.25, 0.5, 1.0]),
                                                st.sampled_from([0.0, 4.0, 16.0])),
                                      max_size=5))  # fmt: skip
    params = {"buy_again_weight": draw(st.sampled_from([0.0, 0.5, 1.0])),
              "buy_again_horizon_days": 8.0,
              "buy_again_half_life_days": draw(st.sampled_from([0.0, 32.0]))}  # fmt: skip
    return RuleSet.from_rows(
        "v", [p for p in pairs if p[0] != p[1]], draw(st.permutations(ITEMS))[:4],
        [(i, r, d) for i, (r, d) in repurchase.items()], DEFAULT_PARAMS | params,
    )  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    rules=rule_sets(),
    session=st.lists(st.sampled_from(ITEMS), max_size=4),
    affinities=st.dictionaries(st.sampled_from(ITEMS), DYADIC, max_size=6),
    purchases=st.dictionaries(st.sampled_from(ITEMS),
                              st.tuples(st.integers(0, 4), st.sampled_from([32.0, 16.0]),
                                        st.sampled_from([0.0, 4.0, 16.0])),
                              max_size=4),  # fmt: skip
    k=st.integers(0, 8),
    exclude_seen=st.booleans(),
)
def test_the_fast_path_gives_the_plain_rules_list(rules, session, affinities, purchases, k,
                                                  exclude_seen) -> None:  # fmt: skip
    expected = plainly(rules, session, affinities, k, purchases=purchases,
                       exclude_seen=exclude_seen)  # fmt: skip
    got = recommend_explained(rules, session, affinities, k, purchases=purchases,
                              exclude_seen=exclude_seen)  # fmt: skip
    assert got == expected
    # starting from the affinities' kept sums changes nothing (and does not change them)
    kept = similarity_sums(rules, affinity_weights(affinities))
    before = dict(kept)
    again = recommend_explained(rules, session, affinities, k, purchases=purchases,
                                exclude_seen=exclude_seen, affinity_sums=kept)  # fmt: skip
    assert again == expected
    assert kept == before

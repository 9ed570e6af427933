"""The fast scoring path against the rules stated plainly.

``recommend_explained`` keeps only the best ``k`` similar candidates, works out the detail of
the items it returns only, and may start from a user's kept affinity scores. ``plainly`` below
is the straightforward statement it replaced (every candidate scored, its detail tracked, everything
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
    buy_again_score,
    recommend_explained,
    score_affinities,
)


def plainly(
    rules: RuleSet,
    session_items: Sequence[str],
    affinities: Mapping[str, float],
    k: int,
    *,
    purchases: Mapping[str, Purchase],
    exclude_seen: bool,
) -> list[Scored]:
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
            candidates[item] = (
                max(1 - w, 1e-6) * score / best,
                Scored(item, score, "similar_to", because[item][1]),
            )
    raw = {
        i: buy_again_score(p, *rules.repurchase[i], horizon, half_life)
        for i, p in bought.items()
        if i in rules.repurchase
    }
    top_again = max(raw.values(), default=0.0)
    for item, value in raw.items():
        score = value / top_again if top_again > 0 else 0.0
        if score > 0 and (item not in candidates or w * score > candidates[item][0]):
            candidates[item] = (w * score, Scored(item, score, "buy_again", None))
    excluded = (set(context) | set(purchases)) - set(bought) if exclude_seen else set()
    ranked = [
        s
        for _, s in sorted(
            ((r, s) for i, (r, s) in candidates.items() if i not in excluded),
            key=lambda p: (-p[0], p[1].item),
        )
    ]
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
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(ITEMS),
                st.sampled_from(ITEMS),
                st.sampled_from([-0.5, 0.125, 0.25, 0.5, 1.0]),
            ),
            max_size=40,
        )
    )
    repurchase = draw(
        st.dictionaries(
            st.sampled_from(ITEMS),
            st.tuples(st.sampled_from([0.25, 0.5, 1.0]), st.sampled_from([0.0, 4.0, 16.0])),
            max_size=5,
        )
    )
    params = {
        "buy_again_weight": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "buy_again_horizon_days": 8.0,
        "buy_again_half_life_days": draw(st.sampled_from([0.0, 32.0])),
    }
    return RuleSet.from_rows(
        "v",
        [p for p in pairs if p[0] != p[1]],
        draw(st.permutations(ITEMS))[:4],
        [(i, r, d) for i, (r, d) in repurchase.items()],
        DEFAULT_PARAMS | params,
    )


@settings(max_examples=400, deadline=None)
@given(
    rules=rule_sets(),
    session=st.lists(st.sampled_from(ITEMS), max_size=4),
    affinities=st.dictionaries(st.sampled_from(ITEMS), DYADIC, max_size=6),
    purchases=st.dictionaries(
        st.sampled_from(ITEMS),
        st.tuples(
            st.integers(0, 4), st.sampled_from([32.0, 16.0]), st.sampled_from([0.0, 4.0, 16.0])
        ),
        max_size=4,
    ),
    k=st.integers(0, 8),
    exclude_seen=st.booleans(),
)
def test_the_fast_path_gives_the_plain_rules_list(
    rules, session, affinities, purchases, k, exclude_seen
) -> None:
    expected = plainly(
        rules, session, affinities, k, purchases=purchases, exclude_seen=exclude_seen
    )
    got = recommend_explained(
        rules, session, affinities, k, purchases=purchases, exclude_seen=exclude_seen
    )
    assert got == expected
    # starting from the affinities' kept scores changes nothing (and does not change them)
    kept = score_affinities(rules, affinities)
    before = (dict(kept.weights), dict(kept.sums), dict(kept.strongest))
    again = recommend_explained(
        rules, session, None, k, purchases=purchases, exclude_seen=exclude_seen, kept=kept
    )
    assert again == expected
    assert (kept.weights, kept.sums, kept.strongest) == before


def test_a_session_item_whose_negative_similarity_shrank_gives_way_to_the_runner_up() -> None:
    # T's strongest affinity is A (0.25 x -0.5); A is also in the session, so its part falls
    # to 1.25 x -0.5 and B's (0.5 x -0.5), never the strongest before, becomes the detail
    rules = RuleSet.from_rows("v", [("A", "T", -0.5), ("B", "T", -0.5), ("A", "X", 1.0)])
    got = recommend_explained(rules, ["A"], {"A": 0.25, "B": 0.5}, 3)
    assert [(s.item, s.detail) for s in got] == [("X", "A"), ("T", "B")]
    assert got == plainly(rules, ["A"], {"A": 0.25, "B": 0.5}, 3, purchases={}, exclude_seen=True)

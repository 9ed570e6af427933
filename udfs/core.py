"""Score a live context against a rule set: SAR's item-based scoring, blended with buy-again.

A context is what is known about the user right now: the items of the current session (each
counts ``session_weight``) plus the user's affinities from the last retrain (``interactions``),
and, for buy-again, what the user bought before (``purchases``: item -> times bought, days
since the first and since the latest purchase). The same rules as
models/recommendations/user_recommendations.sql, so the table and a live call agree:

- ``similar_to``: the sum, over the context's items, of context weight times similarity; the
  detail is the context item that contributed most.
- ``buy_again``: an item bought before, scored repurchase rate x purchases x how due it is:
  min(1, (days since + horizon) / interval), the
  interval being the item's median shrunk towards the user's own (2 gaps' worth of prior),
  x recency: 2^(-days since / half-life), relative to the user's best buy-again item.
- Both rank on one blend: ``buy_again_weight`` x buy-again + the rest x similarity / the best
  similarity. Context items are not recommended again unless bought (or ``exclude_seen`` is
  false); when fewer than ``k`` items remain, the popular items fill the list with score 0
  (``popular_in_segment``, the detail the rule set's ``segment``).

No imports beyond the standard library: this module is shipped into Snowflake by value.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import inf
from typing import NamedTuple

Recommendation = tuple[str, float]
# times bought, days since the first purchase, days since the latest
Purchase = tuple[int, float, float]

DEFAULT_PARAMS = {
    "buy_again_weight": 1.0,
    "buy_again_horizon_days": 30.0,
    "buy_again_half_life_days": 60.0,
}


class Scored(NamedTuple):
    """One recommendation with its reason (similar_to, buy_again, popular_in_segment) and
    detail (the context item it is similar to, or the segment it is popular in)."""

    item: str
    score: float
    reason: str
    detail: str | None


@dataclass(frozen=True)
class RuleSet:
    """One published rule-set version: each item's neighbours ({neighbour: similarity}, in the
    rule set's order), the popular fallback (of ``segment``), each repurchased item's
    (repurchase rate, interval in days), and the blend's parameters."""

    version: str
    neighbours: Mapping[str, Mapping[str, float]]
    popular: Sequence[str] = field(default_factory=tuple)
    repurchase: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    params: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    segment: str = "*"

    @classmethod
    def from_rows(
        cls,
        version: str,
        similarity: Iterable[tuple[str, str, float]],
        popular: Iterable[str] = (),
        repurchase: Iterable[tuple[str, float, float | None]] = (),
        params: Mapping[str, float] | None = None,
    ) -> RuleSet:
        """From (product_id, similar_product_id, similarity) rows, popular items in order,
        (product_id, repurchase_rate, repurchase_interval_days) rows and the blend's params."""
        neighbours: dict[str, dict[str, float]] = {}
        for item, neighbour, score in similarity:
            neighbours.setdefault(item, {})[neighbour] = float(score)
        return cls(
            version,
            neighbours,
            tuple(popular),
            {i: (float(r), float(d or 0.0)) for i, r, d in repurchase},
            DEFAULT_PARAMS | {k: float(v) for k, v in (params or {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "neighbours": {k: list(map(list, v.items())) for k, v in self.neighbours.items()},
                "popular": list(self.popular),
                "repurchase": {k: list(v) for k, v in self.repurchase.items()},
                "params": dict(self.params),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RuleSet:
        data = json.loads(text)
        neighbours = {k: {n: float(s) for n, s in v} for k, v in data["neighbours"].items()}
        repurchase = {k: (float(r), float(d)) for k, (r, d) in data.get("repurchase", {}).items()}
        params = DEFAULT_PARAMS | data.get("params", {})
        return cls(data["version"], neighbours, tuple(data["popular"]), repurchase, params)


def buy_again_score(
    purchase: Purchase,
    rate: float,
    item_interval: float,
    horizon: float,
    half_life: float = 0.0,
) -> float:
    """The buy-again score of one item before it is made relative to the user's best (see the
    module's docstring)."""
    times, first_ago, last_ago = purchase
    interval = ((first_ago - last_ago) + 2 * item_interval) / (times - 1 + 2)
    due = 1.0 if interval <= 0 else min(1.0, (last_ago + horizon) / interval)
    recency = 2.0 ** (-last_ago / half_life) if half_life > 0 else 1.0
    return rate * times * due * recency


class AffinityScores(NamedTuple):
    """A user's affinities scored under a rule set (``score_affinities``): the weights counted,
    each neighbour's sum of weight x similarity, and the (part, item) contributing most to it.
    Most of a call's cost, and the same until the affinities or the rule set change: a caller
    may keep it and pass it to ``recommend_explained``."""

    weights: dict[str, float]
    sums: dict[str, float]
    strongest: dict[str, tuple[float, str]]


def score_affinities(rules: RuleSet, affinities: Mapping[str, float] | None) -> AffinityScores:
    weights: dict[str, float] = {}
    for item, weight in (affinities or {}).items():
        if item is not None and weight:
            weights[item] = weights.get(item, 0.0) + float(weight)
    sums: dict[str, float] = {}
    strongest: dict[str, tuple[float, str]] = {}
    get, top_of = sums.get, strongest.get
    table = rules.neighbours
    for item, weight in weights.items():
        for neighbour, similarity in table.get(item, {}).items():
            part = weight * similarity
            sums[neighbour] = get(neighbour, 0.0) + part
            top = top_of(neighbour)  # _better's rule, inline: the hot loop of a first call
            if top is None or part > top[0] or (part == top[0] and item < top[1]):
                strongest[neighbour] = (part, item)
    return AffinityScores(weights, sums, strongest)


def _better(part: float, source: str, top: tuple[float, str] | None) -> bool:
    return top is None or part > top[0] or (part == top[0] and source < top[1])


def _strongest(rules: RuleSet, context: Mapping[str, float], item: str,
               kept: AffinityScores, session: Mapping[str, float]) -> str | None:  # fmt: skip
    """The context item contributing most to ``item``'s similarity (ties: the smallest id):
    the affinities' strongest, against each session item's part with its weight now."""
    top = kept.strongest.get(item)
    if top is not None and top[1] in session:
        grown = context[top[1]] * rules.neighbours[top[1]][item]
        if grown <= top[0]:  # a negative similarity shrank it: the runner-up is not kept
            top = None
            for source, weight in context.items():
                similarity = rules.neighbours.get(source, {}).get(item)
                if similarity is not None and _better(weight * similarity, source, top):
                    top = (weight * similarity, source)
            return None if top is None else top[1]
        top = None  # it grew: it is among the session's items below
    for source in session:
        similarity = rules.neighbours.get(source, {}).get(item)
        if similarity is not None and _better(context[source] * similarity, source, top):
            top = (context[source] * similarity, source)
    return None if top is None else top[1]


def recommend_explained(
    rules: RuleSet,
    session_items: Sequence[str] | None = None,
    affinities: Mapping[str, float] | None = None,
    k: int = 10,
    *,
    purchases: Mapping[str, Purchase] | None = None,
    session_weight: float = 1.0,
    exclude_seen: bool = True,
    kept: AffinityScores | None = None,
) -> list[Scored]:
    """The top ``k`` for a context with their reasons, best first; ties by item id.

    ``kept``: ``score_affinities(rules, affinities)`` kept from an earlier call with the same
    rule set and affinities (then ``affinities`` is not read). The session's items are added
    to a copy of its sums; only the best ``k`` similar candidates are ranked against the
    purchases, and only the items returned get their detail: a call costs the session's
    neighbours, not the affinities' nor a sort of every candidate."""
    kept = kept if kept is not None else score_affinities(rules, affinities)
    session: dict[str, float] = {}
    context = dict(kept.weights)
    for item in session_items or ():
        if item is not None:
            session[item] = session.get(item, 0.0) + session_weight
            context[item] = context.get(item, 0.0) + session_weight
    sums = dict(kept.sums)
    get = sums.get
    for item, weight in session.items():
        for neighbour, similarity in rules.neighbours.get(item, {}).items():
            sums[neighbour] = get(neighbour, 0.0) + weight * similarity

    w = float(rules.params.get("buy_again_weight", DEFAULT_PARAMS["buy_again_weight"]))
    horizon = float(rules.params.get("buy_again_horizon_days", 30.0))
    half_life = float(rules.params.get("buy_again_half_life_days", 0.0))
    bought = {i: p for i, p in (purchases or {}).items() if i is not None and p[0] > 0}
    raw = {
        item: buy_again_score(purchase, *rules.repurchase[item], horizon, half_life)
        for item, purchase in bought.items()
        if item in rules.repurchase
    }
    top_again = max(raw.values(), default=0.0)
    excluded = (set(context) | set(purchases or ())) - set(bought) if exclude_seen else set()
    best = max(sums.values(), default=0.0)
    factor = max(1 - w, 1e-6)  # at weight 1 similar items still rank among themselves
    # (rank score, item, score, reason): the rank is the better of similarity and buy-again
    ranked: list[tuple[float, str, float, str]] = []
    if best > 0 and k > 0:
        # the best k once the excluded and the purchases are out are among these many
        enough = k + len(excluded) + len(raw)
        cut = heapq.nlargest(enough, sums.values())[-1] if len(sums) > enough else -inf
        cut -= abs(cut) * 1e-9  # scores a rounding apart may tie on the rank
        ranked = [(factor * s / best, i, s, "similar_to") for i, s in sums.items()
                  if s >= cut and i not in excluded and i not in raw]  # fmt: skip
    for item, value in raw.items():
        similar = (factor * sums[item] / best, item, sums[item], "similar_to") if (
            best > 0 and item in sums) else None  # fmt: skip
        score = value / top_again if top_again > 0 else 0.0
        if score > 0 and (similar is None or w * score > similar[0]):
            ranked.append((w * score, item, score, "buy_again"))
        elif similar is not None:
            ranked.append(similar)
    ranked.sort(key=lambda p: (-p[0], p[1]))
    top = [Scored(i, s, reason,
                  _strongest(rules, context, i, kept, session) if reason == "similar_to" else None)
           for _, i, s, reason in ranked[: max(k, 0)]]  # fmt: skip
    if len(top) < k:
        taken = excluded | {s.item for s in top}
        for item in rules.popular:
            if len(top) >= k:
                break
            if item not in taken:
                top.append(Scored(item, 0.0, "popular_in_segment", rules.segment))
                taken.add(item)
    return top


def recommend(
    rules: RuleSet,
    session_items: Sequence[str] | None = None,
    affinities: Mapping[str, float] | None = None,
    k: int = 10,
    *,
    purchases: Mapping[str, Purchase] | None = None,
    session_weight: float = 1.0,
    exclude_seen: bool = True,
) -> list[Recommendation]:
    """The top ``k`` (item, score) for a context, best first; ties by item id (the reasons:
    ``recommend_explained``)."""
    top = recommend_explained(
        rules, session_items, affinities, k, purchases=purchases,
        session_weight=session_weight, exclude_seen=exclude_seen,
    )  # fmt: skip
    return [(s.item, s.score) for s in top]

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

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """One published rule-set version: each item's neighbours, the popular fallback (of
    ``segment``), each repurchased item's (repurchase rate, interval in days), and the blend's
    parameters."""

    version: str
    neighbours: Mapping[str, Sequence[tuple[str, float]]]
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
        neighbours: dict[str, list[tuple[str, float]]] = {}
        for item, neighbour, score in similarity:
            neighbours.setdefault(item, []).append((neighbour, float(score)))
        return cls(
            version,
            {k: tuple(v) for k, v in neighbours.items()},
            tuple(popular),
            {i: (float(r), float(d or 0.0)) for i, r, d in repurchase},
            DEFAULT_PARAMS | {k: float(v) for k, v in (params or {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "neighbours": {k: [list(p) for p in v] for k, v in self.neighbours.items()},
                "popular": list(self.popular),
                "repurchase": {k: list(v) for k, v in self.repurchase.items()},
                "params": dict(self.params),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RuleSet:
        data = json.loads(text)
        neighbours = {k: tuple((n, float(s)) for n, s in v) for k, v in data["neighbours"].items()}
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


def recommend_explained(
    rules: RuleSet,
    session_items: Sequence[str] | None = None,
    affinities: Mapping[str, float] | None = None,
    k: int = 10,
    *,
    purchases: Mapping[str, Purchase] | None = None,
    session_weight: float = 1.0,
    exclude_seen: bool = True,
) -> list[Scored]:
    """The top ``k`` for a context with their reasons, best first; ties by item id."""
    context: dict[str, float] = {}
    for item, weight in (affinities or {}).items():
        if item is not None and weight:
            context[item] = context.get(item, 0.0) + float(weight)
    for item in session_items or ():
        if item is not None:
            context[item] = context.get(item, 0.0) + session_weight
    similar: dict[str, float] = {}
    because: dict[str, tuple[float, str]] = {}
    for item, weight in context.items():
        for neighbour, similarity in rules.neighbours.get(item, ()):
            part = weight * similarity
            similar[neighbour] = similar.get(neighbour, 0.0) + part
            top = because.get(neighbour)
            if top is None or part > top[0] or (part == top[0] and item < top[1]):
                because[neighbour] = (part, item)
    w = float(rules.params.get("buy_again_weight", DEFAULT_PARAMS["buy_again_weight"]))
    horizon = float(rules.params.get("buy_again_horizon_days", 30.0))
    half_life = float(rules.params.get("buy_again_half_life_days", 0.0))
    bought = {i: p for i, p in (purchases or {}).items() if i is not None and p[0] > 0}
    best = max(similar.values(), default=0.0)
    # item -> (rank score, Scored): the better of its similarity and buy-again
    candidates: dict[str, tuple[float, Scored]] = {}
    if best > 0:
        for item, score in similar.items():
            reason = Scored(item, score, "similar_to", because[item][1])
            # at weight 1 similar items still rank among themselves, after every purchase
            candidates[item] = (max(1 - w, 1e-6) * score / best, reason)
    raw = {
        item: buy_again_score(purchase, *rules.repurchase[item], horizon, half_life)
        for item, purchase in bought.items()
        if item in rules.repurchase
    }
    top_again = max(raw.values(), default=0.0)
    for item, value in raw.items():
        score = value / top_again if top_again > 0 else 0.0
        if score > 0 and (item not in candidates or w * score > candidates[item][0]):
            candidates[item] = (w * score, Scored(item, score, "buy_again", None))
    excluded = (set(context) | set(purchases or ())) - set(bought) if exclude_seen else set()
    ranked = [
        s
        for _, s in sorted(
            ((r, s) for i, (r, s) in candidates.items() if i not in excluded),
            key=lambda p: (-p[0], p[1].item),
        )[: max(k, 0)]
    ]
    if len(ranked) < k:
        taken = excluded | {s.item for s in ranked}
        for item in rules.popular:
            if len(ranked) >= k:
                break
            if item not in taken:
                ranked.append(Scored(item, 0.0, "popular_in_segment", rules.segment))
                taken.add(item)
    return ranked


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

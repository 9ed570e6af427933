"""Score a live context against an item-similarity rule set: SAR's item-based scoring.

A context is what is known about the user right now: the items of the current session (each
counts ``session_weight``) plus the user's affinities from the last retrain (``interactions``).
An item's score is the sum, over the context's items, of context weight times similarity to it.
Items of the context are not recommended again (unless ``exclude_seen`` is false); when the
neighbours give fewer than ``k`` items, the most popular items fill the list with score 0.

No imports beyond the standard library: this module is shipped into Snowflake by value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Recommendation = tuple[str, float]


@dataclass(frozen=True)
class RuleSet:
    """One published rule-set version: each item's neighbours, and the popular fallback."""

    version: str
    neighbours: Mapping[str, Sequence[tuple[str, float]]]
    popular: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def from_rows(
        cls,
        version: str,
        similarity: Iterable[tuple[str, str, float]],
        popular: Iterable[str] = (),
    ) -> RuleSet:
        """From (product_id, similar_product_id, similarity) rows and popular items in order."""
        neighbours: dict[str, list[tuple[str, float]]] = {}
        for item, neighbour, score in similarity:
            neighbours.setdefault(item, []).append((neighbour, float(score)))
        return cls(version, {k: tuple(v) for k, v in neighbours.items()}, tuple(popular))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "neighbours": {k: [list(p) for p in v] for k, v in self.neighbours.items()},
                "popular": list(self.popular),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RuleSet:
        data = json.loads(text)
        neighbours = {k: tuple((n, float(s)) for n, s in v) for k, v in data["neighbours"].items()}
        return cls(data["version"], neighbours, tuple(data["popular"]))


def recommend(
    rules: RuleSet,
    session_items: Sequence[str] | None = None,
    affinities: Mapping[str, float] | None = None,
    k: int = 10,
    *,
    session_weight: float = 1.0,
    exclude_seen: bool = True,
) -> list[Recommendation]:
    """The top ``k`` (item, score) for a context, best first; ties by item id."""
    context: dict[str, float] = {}
    for item, weight in (affinities or {}).items():
        if item is not None and weight:
            context[item] = context.get(item, 0.0) + float(weight)
    for item in session_items or ():
        if item is not None:
            context[item] = context.get(item, 0.0) + session_weight
    scores: dict[str, float] = {}
    for item, weight in context.items():
        for neighbour, similarity in rules.neighbours.get(item, ()):
            scores[neighbour] = scores.get(neighbour, 0.0) + weight * similarity
    excluded = set(context) if exclude_seen else set()
    ranked = sorted(
        ((i, s) for i, s in scores.items() if i not in excluded), key=lambda p: (-p[1], p[0])
    )[: max(k, 0)]
    if len(ranked) < k:
        taken = excluded | {i for i, _ in ranked}
        for item in rules.popular:
            if len(ranked) >= k:
                break
            if item not in taken:
                ranked.append((item, 0.0))
                taken.add(item)
    return ranked

"""The shop's catalog: ~300 products made from the category table, a pure function of the seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from loader.sources.synthetic.tables import ADJECTIVES, CATEGORIES, COLORS


@dataclass(frozen=True)
class Product:
    """A catalog item; ``popularity`` is a Zipf weight (sums to 1 over the catalog)."""

    id: str
    name: str
    category: str
    price: float
    popularity: float


_PRODUCTS_PER_CATEGORY = 25


def catalog(seed: int = 0) -> list[Product]:
    """The shop's ~300 products; a pure function of ``seed`` so recommenders can rebuild it."""
    rng = random.Random(seed)
    n = len(CATEGORIES) * _PRODUCTS_PER_CATEGORY
    ranks = list(range(1, n + 1))
    rng.shuffle(ranks)
    weights = [1.0 / r**1.1 for r in ranks]
    total = sum(weights)
    names: dict[str, list[str]] = {}
    for cat, _lo, _hi, nouns in CATEGORIES:
        combos = [(a, n_, c) for a in ADJECTIVES for n_ in nouns for c in COLORS]
        names[cat] = [f"{a} {n_} ({c})" for a, n_, c in rng.sample(combos, _PRODUCTS_PER_CATEGORY)]
    products = []
    for i in range(n):
        cat, lo, hi, _nouns = CATEGORIES[i % len(CATEGORIES)]
        price = round(lo * (hi / lo) ** rng.random()) - 0.01  # log-uniform, ends in .99
        name = names[cat][i // len(CATEGORIES)]
        products.append(Product(f"sku-{i + 1:04d}", name, cat, price, weights[i] / total))
    return products

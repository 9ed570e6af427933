"""Synthetic visitors in real time: shoppers of the demo's catalog browsing now, sent to a
collector as the JavaScript tracker sends them (tp2 POSTs), so ``persona serve --simulate``
(``make live``) shows attributes, profiles and decisions change while one watches.

Some visitors return: devices (and their logins) the warehouse already knows, so a profile
built from thirty days of history moves; the others are new. A visit is a page view, a few
product views in one category, sometimes an add to cart, sometimes a purchase.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loader.sources.synthetic.catalog import Product, catalog
from loader.sources.synthetic.tables import (
    ACTIONS,
    CONTEXTS_SCHEMA,
    CURRENCY,
    HOST,
    PRODUCT_SCHEMA,
    TRANSACTION_SCHEMA,
    WEB_PAGE_SCHEMA,
)

log = logging.getLogger("persona.serving.visitors")

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0 Safari/537.36")  # fmt: skip


@dataclass(frozen=True)
class Visitor:
    domain_userid: str
    user_id: str | None = None
    network_userid: str | None = None


def tp2_body(events: list[dict[str, str]]) -> bytes:
    return json.dumps({"schema": PAYLOAD, "data": events}).encode()


class Visits:
    """Builds one visit's tracker events, stamped now."""

    def __init__(self, products: Sequence[Product], rng: random.Random) -> None:
        self.products = list(products)
        self.rng = rng
        self.categories = sorted({p.category for p in products})

    def visit(self, visitor: Visitor, session: str) -> tuple[list[dict[str, str]], str]:
        rng = self.rng
        category = rng.choice(self.categories)
        shelf = [p for p in self.products if p.category == category]
        viewed = rng.sample(shelf, k=min(len(shelf), rng.randint(1, 4)))
        events = [self._event(visitor, session, "pv", f"/c/{category}")]
        for product in viewed:
            events.append(self._action(visitor, session, "product_view", [product]))
        said = f"viewed {len(viewed)} in {category}"
        if rng.random() < 0.35:
            cart = [viewed[-1]]
            events.append(self._action(visitor, session, "add_to_cart", cart))
            said += f", added {cart[0].id} to the cart"
            if rng.random() < 0.4:
                events.append(self._action(visitor, session, "transaction", cart, order=True))
                said += f", bought it ({cart[0].price:.2f} {CURRENCY})"
        return events, said

    def _event(self, visitor: Visitor, session: str, e: str, path: str,
               entities: Sequence[dict[str, Any]] = ()) -> dict[str, str]:  # fmt: skip
        now = str(time.time_ns() // 1_000_000)
        page = {"schema": WEB_PAGE_SCHEMA, "data": {"id": str(uuid.uuid4())}}
        event = {"e": e, "eid": str(uuid.uuid4()), "dtm": now, "stm": now, "p": "web",
                 "tv": "js-4.6.0", "aid": "persona-live", "duid": visitor.domain_userid,
                 "sid": session, "vid": "1", "res": "1920x1080", "url": f"https://{HOST}{path}",
                 "co": json.dumps({"schema": CONTEXTS_SCHEMA,
                                   "data": [*entities, page]})}  # fmt: skip
        if visitor.user_id:
            event["uid"] = visitor.user_id
        return event

    def _action(self, visitor: Visitor, session: str, kind: str, products: Sequence[Product],
                order: bool = False) -> dict[str, str]:  # fmt: skip
        entities: list[dict[str, Any]] = [
            {"schema": PRODUCT_SCHEMA, "data": {"id": p.id, "name": p.name,
                                                "category": p.category, "price": p.price,
                                                "currency": CURRENCY, "quantity": 1}}
            for p in products
        ]  # fmt: skip
        if order:
            entities.append({"schema": TRANSACTION_SCHEMA, "data": {
                "transaction_id": f"live-{uuid.uuid4().hex[:12]}",
                "revenue": round(sum(p.price for p in products), 2), "currency": CURRENCY,
                "payment_method": "card", "total_quantity": len(products)}})  # fmt: skip
        event = self._event(visitor, session, "ue", f"/p/{products[0].id}", entities)
        event["ue_pr"] = ACTIONS[kind]
        return event


class Simulator:
    """Posts ``rate`` visits a second to ``collector`` until stopped; one thread."""

    def __init__(self, collector: str, rate: float, known: Sequence[Visitor] = (),
                 returning: float = 0.6, seed: int | None = None) -> None:  # fmt: skip
        self.collector = collector.rstrip("/")
        self.rate = rate
        self.known = list(known)
        self.returning = returning if known else 0.0
        self.rng = random.Random(seed)
        self.visits = Visits(catalog(), self.rng)
        self.sent = 0
        self.failed = 0
        self.stopped = threading.Event()

    def pick(self) -> Visitor:
        if self.rng.random() < self.returning:
            return self.rng.choice(self.known)
        return Visitor(str(uuid.uuid4()))

    def send(self, visitor: Visitor) -> str:
        events, said = self.visits.visit(visitor, str(uuid.uuid4()))
        headers = {"Content-Type": "application/json; charset=UTF-8", "User-Agent": BROWSER}
        if visitor.network_userid:
            headers["Cookie"] = f"sp={visitor.network_userid}"
        request = urllib.request.Request(self.collector + TP2, data=tp2_body(events),
                                         headers=headers, method="POST")  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        self.sent += len(events)
        return said

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stopped.is_set():
            visitor = self.pick()
            try:
                said = self.send(visitor)
                user = f" ({visitor.user_id})" if visitor.user_id else ""
                log.info("visitor %s%s %s", visitor.domain_userid, user, said)
            except OSError as exc:  # the collector is starting or stopping: try the next one
                self.failed += 1
                log.debug("a simulated visit failed: %s", exc)
            next_at += interval
            self.stopped.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="visitors", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopped.set()


def known_visitors(con: object, param: str = "?", limit: int = 500) -> list[Visitor]:
    """Devices the warehouse knows, with their logins, to come back: the most active first
    (``param``: the connection's placeholder, ``%s`` on Snowflake)."""
    try:
        rows = con.execute(  # type: ignore[attr-defined]
            "select domain_userid, any_value(user_id), any_value(network_userid) "
            "from atomic.events where domain_userid is not null group by 1 "
            f"order by count(*) desc limit {param}",
            [limit],
        ).fetchall()
    except Exception:  # an empty warehouse: everybody is new
        return []
    return [Visitor(d, u, n) for d, u, n in rows]

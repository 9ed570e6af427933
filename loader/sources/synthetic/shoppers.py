"""The shopper simulator: users with tastes, devices and habits, their sessions day by day
(landing, browsing, search, cart, checkout) and the bots beside them. Each event is handed to
``Delivery``, which times and buffers it."""

from __future__ import annotations

import bisect
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from loader.contract import FIELD_INDEX
from loader.sources.synthetic.catalog import Product, catalog
from loader.sources.synthetic.config import SyntheticConfig
from loader.sources.synthetic.delivery import Delivery
from loader.sources.synthetic.tables import (
    ACTIONS,
    APP_ID,
    BOT_DERIVED,
    BOT_SESSION_SHARE,
    BOTS,
    BUY_P,
    CART_SCHEMA,
    CATEGORIES,
    CATEGORY_NAMES,
    CONTEXTS,
    CURRENCY,
    DAY_MS,
    DOC_HEIGHTS,
    ECOM_ACTION,
    EMAIL_CAMPAIGNS,
    EPOCH,
    FIRST_NAMES,
    HOST,
    HOUR_MS,
    HOURS,
    HUMAN_DERIVED,
    IP_PREFIXES,
    LAST_NAMES,
    LOCATIONS,
    N_FIELDS,
    PAGE_PING,
    PAGE_VIEW,
    PAYMENT_METHODS,
    PP,
    PRODUCT_SCHEMA,
    PROFILES,
    REFERRERS,
    REGISTERED_P,
    SEARCH_SCHEMA,
    SESSION_RATE,
    SESSION_TIMEOUT_MS,
    SITE_SEARCH,
    SOURCES,
    TRANSACTION_SCHEMA,
    UNSTRUCT,
    USER_ID,
    WEB_PAGE_SCHEMA,
    contexts_json,
    cumulative,
    unstruct_json,
)


@dataclass(slots=True)
class _Page:
    kind: str  # home, category, product, search, cart, checkout, confirmation
    path: str
    title: str
    query: str = ""
    category: str = ""
    product: Product | None = None
    terms: tuple[str, ...] = ()
    campaign: tuple[str, ...] = ()  # mkt medium, source, term, campaign, clickid, network

    @property
    def url(self) -> str:
        return f"https://{HOST}{self.path}" + (f"?{self.query}" if self.query else "")


@dataclass(slots=True)
class _Device:
    base: list[str]  # every field that is fixed for the device (ids, useragent, geo, screen)
    view: tuple[int, int]
    skew_ms: int  # device clock error; derived_tstamp corrects it
    session_idx: int = 0
    last_ms: int = -(10**15)
    logged_in: bool = False


@dataclass(slots=True)
class _User:
    user_id: str
    registered: bool
    taste: list[float]
    taste_cum: list[float]
    rate: float  # expected sessions per day
    first_day: int
    utc_offset_ms: int
    devices: list[_Device]
    device_cum: list[float]


class Sim:
    """Holds the world and the not-yet-emitted events of the stream."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.products = catalog(cfg.seed)
        self.by_cat: dict[str, tuple[list[Product], list[float]]] = {}
        for cat in CATEGORY_NAMES:
            items = [p for p in self.products if p.category == cat]
            self.by_cat[cat] = (items, cumulative([p.popularity for p in items]))
        self.cat_pop_cum = cumulative(
            [sum(p.popularity for p in self.by_cat[c][0]) for c in CATEGORY_NAMES]
        )
        self.all_cum = cumulative([p.popularity for p in self.products])
        self.out = Delivery(self.rng)
        self.orders = 0
        start = cfg.start
        if start.tzinfo is not None:
            start = start.astimezone(UTC).replace(tzinfo=None)
        self.start_ms = (start - EPOCH) // timedelta(milliseconds=1)
        self.template = [""] * N_FIELDS
        for name, value in (
            ("app_id", APP_ID),
            ("platform", "web"),
            ("name_tracker", "sp"),
            ("v_tracker", "js-3.24.0"),
            ("v_collector", "ssc-3.2.0-kinesis"),
            ("v_etl", "snowplow-enrich-kinesis-4.2.0"),
            ("page_urlscheme", "https"),
            ("page_urlhost", HOST),
            ("page_urlport", "443"),
            ("br_cookies", "1"),
            ("br_colordepth", "24"),
            ("doc_charset", "UTF-8"),
        ):
            self.template[FIELD_INDEX[name]] = value
        self.loc_cum = cumulative([loc[-1] for loc in LOCATIONS])
        self.profile_cum = cumulative([p[-1] for p in PROFILES])
        self.hour_cum = cumulative(HOURS)
        self.source_cum = cumulative([w for _s, w in SOURCES])
        self.bot_cum = cumulative([b[-1] for b in BOTS])
        self.users = [self._user(i) for i in range(cfg.users)]

    # ---------------------------------------------------------------- world building

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _user(self, i: int) -> _User:
        rng = self.rng
        if rng.random() < 0.75:
            user_id = f"u_{i:06d}"
        else:
            user_id = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{i}@example.com"
        # Dirichlet(0.25): most of the mass lands on 1-3 categories.
        raw = [rng.gammavariate(0.25, 1.0) + 1e-9 for _ in CATEGORY_NAMES]
        total = sum(raw)
        taste = [w / total for w in raw]
        activity = min(rng.paretovariate(1.2), 50.0)  # heavy tail: a few users visit daily
        first_day = 0 if rng.random() < 0.6 else rng.randrange(self.cfg.days)
        loc = LOCATIONS[bisect.bisect(self.loc_cum, rng.random() * self.loc_cum[-1])]
        n_devices = 1 if rng.random() < 0.7 else rng.choice((2, 2, 3))
        devices = [self._device(loc) for _ in range(n_devices)]
        device_w = [1.0] + [rng.uniform(0.4, 1.0) for _ in range(n_devices - 1)]
        # Frequent visitors, and people who shop on several devices, are likelier to have an
        # account: it is what keeps their cart and orders in sync.
        p_account = REGISTERED_P + 0.02 * activity + 0.2 * (n_devices > 1)
        registered = rng.random() < min(0.85, p_account)
        return _User(
            user_id,
            registered,
            taste,
            cumulative(taste),
            activity * SESSION_RATE,
            first_day,
            loc[6] * HOUR_MS,
            devices,
            cumulative(device_w),
        )

    def _device(self, loc: tuple[Any, ...]) -> _Device:
        rng = self.rng
        _name, ua, screens, _w = PROFILES[
            bisect.bisect(self.profile_cum, rng.random() * self.profile_cum[-1])
        ]
        sw, sh = rng.choice(screens)
        mobile = sw < 900
        view = (
            (sw, sh - rng.randint(90, 180))
            if mobile
            else (sw - rng.choice((0, 0, 15, 120, 300)), sh - rng.randint(110, 190))
        )
        row = self.template.copy()
        jitter = rng.uniform(-0.02, 0.02)
        for name, value in (
            ("domain_userid", self._uuid()),
            ("network_userid", self._uuid()),
            ("user_ipaddress", f"{rng.choice(IP_PREFIXES)}.x"),
            ("geo_country", loc[0]),
            ("geo_region", loc[1]),
            ("geo_region_name", loc[2]),
            ("geo_city", loc[3]),
            ("geo_zipcode", loc[4]),
            ("geo_timezone", loc[5]),
            ("geo_latitude", f"{loc[7] + jitter:.4f}"),
            ("geo_longitude", f"{loc[8] - jitter:.4f}"),
            ("useragent", ua),
            ("br_lang", loc[9]),
            ("os_timezone", loc[5]),
            ("dvce_screenwidth", str(sw)),
            ("dvce_screenheight", str(sh)),
            ("br_viewwidth", str(view[0])),
            ("br_viewheight", str(view[1])),
            ("doc_width", str(view[0])),
            ("derived_contexts", HUMAN_DERIVED),
        ):
            row[FIELD_INDEX[name]] = value
        skew = int(rng.gauss(0, 1500)) if rng.random() < 0.95 else rng.randint(-3600, 3600) * 1000
        return _Device(row, view, skew)

    def _pick_category(self, user: _User | None) -> str:
        rng = self.rng
        cum = user.taste_cum if user is not None and rng.random() < 0.8 else self.cat_pop_cum
        return CATEGORY_NAMES[min(bisect.bisect(cum, rng.random() * cum[-1]), len(cum) - 1)]

    def _pick_product(self, category: str) -> Product:
        items, cum = self.by_cat[category]
        return items[min(bisect.bisect(cum, self.rng.random() * cum[-1]), len(items) - 1)]

    # ---------------------------------------------------------------- pages

    def _home(self) -> _Page:
        return _Page("home", "/", "Persona Shop")

    def _category_page(self, cat: str) -> _Page:
        return _Page("category", f"/c/{cat}", f"{cat.capitalize()} | Persona Shop", category=cat)

    def _product_page(self, p: Product) -> _Page:
        return _Page(
            "product", f"/p/{p.id}", f"{p.name} | Persona Shop", category=p.category, product=p
        )

    def _search_page(self, cat: str) -> _Page:
        nouns = CATEGORIES[CATEGORY_NAMES.index(cat)][3]
        phrase = self.rng.choice((*nouns, cat)).lower()
        terms = tuple(phrase.split())
        q = "+".join(terms)
        return _Page(
            "search",
            "/search",
            f"Search results for {phrase} | Persona Shop",
            query=f"q={q}",
            category=cat,
            terms=terms,
        )

    def _landing(self, user: _User, source: str) -> tuple[_Page, tuple[str, ...] | None]:
        """Landing page plus referrer (url, host, medium, source) for a traffic source."""
        rng = self.rng
        cat = self._pick_category(user)
        roll = rng.random()
        if source == "direct":
            page = (
                self._home()
                if roll < 0.6
                else self._product_page(self._pick_product(cat))
                if roll < 0.85
                else self._category_page(cat)
            )
            return page, None
        if source == "search":
            page = (
                self._product_page(self._pick_product(cat))
                if roll < 0.5
                else self._category_page(cat)
                if roll < 0.85
                else self._home()
            )
            return page, REFERRERS["google"]
        if source == "social":
            page = (
                self._product_page(self._pick_product(cat))
                if roll < 0.7
                else self._category_page(cat)
            )
            return page, REFERRERS[rng.choice(("facebook", "facebook", "instagram"))]
        if source == "email":
            page = (
                self._category_page(cat)
                if roll < 0.5
                else self._product_page(self._pick_product(cat))
                if roll < 0.8
                else self._home()
            )
            campaign = rng.choice(EMAIL_CAMPAIGNS)
            page.query = f"utm_source=newsletter&utm_medium=email&utm_campaign={campaign}"
            page.campaign = ("email", "newsletter", "", campaign, "", "")
            return page, (REFERRERS["gmail"] if rng.random() < 0.3 else None)
        # paid search
        page = (
            self._product_page(self._pick_product(cat)) if roll < 0.6 else self._category_page(cat)
        )
        nouns = CATEGORIES[CATEGORY_NAMES.index(cat)][3]
        term = rng.choice(nouns).lower()
        gclid = f"EAIaIQob{rng.getrandbits(160):040x}"
        campaign = f"generic_{cat}"
        page.query = (
            f"utm_source=google&utm_medium=cpc&utm_campaign={campaign}"
            f"&utm_term={term.replace(' ', '+')}&gclid={gclid}"
        )
        page.campaign = ("cpc", "google", term, campaign, gclid, "Google")
        return page, REFERRERS["google"]

    def _next_page(self, user: _User, page: _Page, cart: list[tuple[Product, int]]) -> _Page:
        rng = self.rng
        r = rng.random()
        kind = page.kind
        if kind == "home":
            if r < 0.6:
                return self._category_page(self._pick_category(user))
            if r < 0.85:
                return self._search_page(self._pick_category(user))
            return self._product_page(self._pick_product(self._pick_category(user)))
        if kind in ("category", "search"):
            if r < 0.75:
                cat = page.category if rng.random() < 0.85 else self._pick_category(user)
                return self._product_page(self._pick_product(cat))
            if r < 0.88:
                return self._category_page(self._pick_category(user))
            return self._search_page(self._pick_category(user))
        # product, cart and anything else
        if r < 0.45:
            return self._product_page(
                self._pick_product(page.category or self._pick_category(user))
            )
        if r < 0.7:
            return self._category_page(page.category or self._pick_category(user))
        if r < 0.8:
            return self._search_page(self._pick_category(user))
        if r < 0.9 and cart:
            return _Page("cart", "/cart", "Your cart | Persona Shop")
        return self._home()

    # ---------------------------------------------------------------- sessions

    def human_session(self, user: _User, dev: _Device, t: int) -> None:
        rng = self.rng
        dev.session_idx += 1
        srow = dev.base.copy()
        srow[FIELD_INDEX["domain_sessionidx"]] = str(dev.session_idx)
        srow[FIELD_INDEX["domain_sessionid"]] = self._uuid()
        source = SOURCES[bisect.bisect(self.source_cum, rng.random() * self.source_cum[-1])][0]
        page, ext_referrer = self._landing(user, source)
        # When (which page) the user identifies: a remembered login applies from the start.
        login_at = -1
        if user.registered:
            if dev.logged_in:
                login_at = 0 if rng.random() < 0.85 else -1
            elif rng.random() < 0.3:
                login_at = rng.choice((0, 1, 1, 2, 3))
        cart: list[tuple[Product, int]] = []
        prev: _Page | None = None
        user_id = ""
        n = 0
        checkout: list[_Page] = []
        while True:
            if n == login_at:
                user_id = user.user_id
            if page.kind == "checkout" and user.registered and not user_id:
                user_id = user.user_id  # checkout asks registered users to sign in
            if page.kind == "confirmation" and not user.registered and rng.random() < 0.4:
                user.registered = True  # guest creates an account when ordering
                user_id = user.user_id
            t = self._human_page(srow, page, prev, ext_referrer, t, user_id, user, dev, cart)
            n += 1
            prev = page
            if checkout:
                page = checkout.pop(0)
            elif n < 60 and rng.random() < 0.79:
                page = self._next_page(user, page, cart)
            elif cart and page.kind != "confirmation" and rng.random() < BUY_P:
                checkout = [
                    _Page("checkout", "/checkout", "Checkout | Persona Shop"),
                    _Page(
                        "confirmation",
                        "/checkout/confirmation",
                        "Thank you for your order | Persona Shop",
                    ),
                ]
                page = (
                    _Page("cart", "/cart", "Your cart | Persona Shop")
                    if page.kind != "cart"
                    else checkout.pop(0)
                )
            else:
                break
            t += int(rng.expovariate(1 / 6000)) + 400  # reading, clicking, loading
        if user_id:
            dev.logged_in = True
        dev.last_ms = t

    def _page_row(
        self,
        srow: list[str],
        page: _Page,
        prev: _Page | None,
        ext_referrer: tuple[str, ...] | None,
        user_id: str,
    ) -> list[str]:
        row = srow.copy()
        row[FIELD_INDEX["page_url"]] = page.url
        row[FIELD_INDEX["page_title"]] = page.title
        row[FIELD_INDEX["page_urlpath"]] = page.path
        row[FIELD_INDEX["page_urlquery"]] = page.query
        row[USER_ID] = user_id
        refr: tuple[str, ...] | None
        if prev is not None:
            refr = (prev.url, HOST, "internal", "", "https", prev.path, prev.query)
        elif ext_referrer is not None:
            refr = (*ext_referrer, "https", "/", "")
        else:
            refr = None
        if refr is not None:
            for name, value in zip(
                (
                    "page_referrer",
                    "refr_urlhost",
                    "refr_medium",
                    "refr_source",
                    "refr_urlscheme",
                    "refr_urlpath",
                    "refr_urlquery",
                ),
                refr,
                strict=True,
            ):
                row[FIELD_INDEX[name]] = value
            row[FIELD_INDEX["refr_urlport"]] = "443"
        if page.campaign:
            for name, value in zip(
                (
                    "mkt_medium",
                    "mkt_source",
                    "mkt_term",
                    "mkt_campaign",
                    "mkt_clickid",
                    "mkt_network",
                ),
                page.campaign,
                strict=True,
            ):
                row[FIELD_INDEX[name]] = value
        return row

    def _human_page(
        self,
        srow: list[str],
        page: _Page,
        prev: _Page | None,
        ext_referrer: tuple[str, ...] | None,
        t0: int,
        user_id: str,
        user: _User,
        dev: _Device,
        cart: list[tuple[Product, int]],
    ) -> int:
        """Emit one page's events starting at ``t0``; returns the time of the page's last one."""
        rng = self.rng
        row = self._page_row(srow, page, prev, ext_referrer, user_id)
        doc_height = DOC_HEIGHTS.get(page.kind, 1500) + rng.randint(-300, 300)
        row[FIELD_INDEX["doc_height"]] = str(doc_height)
        web_page = {"schema": WEB_PAGE_SCHEMA, "data": {"id": self._uuid()}}
        row[CONTEXTS] = contexts_json([web_page])
        skew = dev.skew_ms
        self.out.emit(row, PAGE_VIEW, t0, skew)
        end = t0
        engaged = int(rng.lognormvariate(math.log(13_000), 0.9))
        if page.kind in ("checkout", "cart"):
            engaged = min(engaged, 120_000)
        if page.kind == "product":
            assert page.product is not None
            product = page.product
            entity = self._product_entity(product)
            ev = row.copy()
            ev[UNSTRUCT] = ACTIONS["product_view"]
            ev[CONTEXTS] = contexts_json([web_page, entity])
            end = t0 + rng.randint(30, 400)
            self.out.emit(ev, ECOM_ACTION, end, skew)
            affinity = user.taste[CATEGORY_NAMES.index(product.category)]
            if rng.random() < 0.025 + 0.12 * affinity:
                qty = 1 if rng.random() < 0.85 else 2
                cart.append((product, qty))
                total = round(sum(p.price * q for p, q in cart), 2)
                ev = row.copy()
                ev[UNSTRUCT] = ACTIONS["add_to_cart"]
                ev[CONTEXTS] = contexts_json(
                    [
                        web_page,
                        self._product_entity(product, qty),
                        {
                            "schema": CART_SCHEMA,
                            "data": {"total_value": total, "currency": CURRENCY},
                        },
                    ]
                )
                engaged = max(engaged, 4000)
                end = t0 + rng.randint(3000, engaged)
                self.out.emit(ev, ECOM_ACTION, end, skew)
        elif page.kind == "search":
            ev = row.copy()
            results = 0 if rng.random() < 0.05 else rng.randint(1, 60)
            ev[UNSTRUCT] = unstruct_json(
                SEARCH_SCHEMA, {"terms": list(page.terms), "totalResults": results}
            )
            end = t0 + rng.randint(20, 300)
            self.out.emit(ev, SITE_SEARCH, end, skew)
        elif page.kind == "confirmation" and cart:
            self.orders += 1
            revenue = round(sum(p.price * q for p, q in cart), 2)
            txn = {
                "transaction_id": f"ord-{self.cfg.seed}-{self.orders:06d}",
                "revenue": revenue,
                "currency": CURRENCY,
                "payment_method": rng.choice(PAYMENT_METHODS),
                "total_quantity": sum(q for _p, q in cart),
            }
            ev = row.copy()
            ev[UNSTRUCT] = ACTIONS["transaction"]
            ev[CONTEXTS] = contexts_json(
                [
                    web_page,
                    *(self._product_entity(p, q) for p, q in cart),
                    {"schema": TRANSACTION_SCHEMA, "data": txn},
                ]
            )
            end = t0 + rng.randint(50, 500)
            self.out.emit(ev, ECOM_ACTION, end, skew)
            cart.clear()
        # Activity tracking: first ping after the minimum visit length, then every 10 s.
        ping_at = t0 + rng.randint(5, 10) * 1000
        if ping_at <= t0 + engaged:
            max_y = max(0, doc_height - dev.view[1])
            y = 0
            while ping_at <= t0 + engaged:
                ev = row.copy()
                y_min = y
                y = min(max_y, y + int(rng.expovariate(1 / 500)))
                ev[PP[0]], ev[PP[1]], ev[PP[2]], ev[PP[3]] = "0", "0", str(y_min), str(y)
                self.out.emit(ev, PAGE_PING, ping_at, skew)
                end = max(end, ping_at)
                ping_at += 10_000
        return max(end, t0 + min(engaged, 5000))

    def bot_session(self, t: int) -> None:
        rng = self.rng
        ua, ip, geo, _w = BOTS[bisect.bisect(self.bot_cum, rng.random() * self.bot_cum[-1])]
        srow = self.template.copy()
        for name, value in (
            ("domain_userid", self._uuid()),
            ("network_userid", self._uuid()),
            ("domain_sessionidx", "1"),
            ("domain_sessionid", self._uuid()),
            ("user_ipaddress", ip),
            ("geo_country", geo[0]),
            ("geo_region", geo[1]),
            ("geo_region_name", geo[2]),
            ("geo_city", geo[3]),
            ("geo_timezone", geo[4]),
            ("geo_latitude", str(geo[5])),
            ("geo_longitude", str(geo[6])),
            ("useragent", ua),
            ("br_lang", "en-US"),
            ("os_timezone", "UTC"),
            ("dvce_screenwidth", "1024"),
            ("dvce_screenheight", "1024"),
            ("br_viewwidth", "1024"),
            ("br_viewheight", "1024"),
            ("doc_width", "1024"),
            ("derived_contexts", BOT_DERIVED),
        ):
            srow[FIELD_INDEX[name]] = value
        prev: _Page | None = None
        for _ in range(rng.randint(5, 40)):
            roll = rng.random()
            if roll < 0.7:
                page = self._product_page(
                    self.products[
                        bisect.bisect(self.all_cum, rng.random() * self.all_cum[-1])
                        % len(self.products)
                    ]
                )
            elif roll < 0.95:
                page = self._category_page(rng.choice(CATEGORY_NAMES))
            else:
                page = self._home()
            row = self._page_row(srow, page, prev, None, "")
            row[FIELD_INDEX["doc_height"]] = str(rng.randint(1200, 6000))
            web_page = {"schema": WEB_PAGE_SCHEMA, "data": {"id": self._uuid()}}
            row[CONTEXTS] = contexts_json([web_page])
            self.out.emit(row, PAGE_VIEW, t, 0)
            if page.product is not None:  # rendering crawlers run the tracker's page JS
                ev = row.copy()
                ev[UNSTRUCT] = ACTIONS["product_view"]
                ev[CONTEXTS] = contexts_json([web_page, self._product_entity(page.product)])
                self.out.emit(ev, ECOM_ACTION, t + rng.randint(20, 150), 0)
            prev = page
            t += rng.randint(400, 3000)

    @staticmethod
    def _product_entity(p: Product, quantity: int = 0) -> dict[str, object]:
        data: dict[str, object] = {
            "id": p.id,
            "name": p.name,
            "category": p.category,
            "price": p.price,
            "currency": CURRENCY,
        }
        if quantity:
            data["quantity"] = quantity
        return {"schema": PRODUCT_SCHEMA, "data": data}

    # ---------------------------------------------------------------- days

    def simulate_day(self, day: int) -> None:
        rng = self.rng
        day_start = self.start_ms + day * DAY_MS
        weekday = (EPOCH + timedelta(milliseconds=day_start)).weekday()
        factor = 1.15 if weekday >= 5 else 0.94
        sessions = 0
        for user in self.users:
            if day < user.first_day:
                continue
            n = _poisson(rng, user.rate * factor)
            if not n:
                continue
            starts = sorted(self._local_time(user.utc_offset_ms) for _ in range(n))
            for start in starts:
                dev = user.devices[
                    bisect.bisect(user.device_cum, rng.random() * user.device_cum[-1])
                ]
                t = max(
                    day_start + start,
                    dev.last_ms + SESSION_TIMEOUT_MS + rng.randint(1, 20) * 60_000,
                )
                self.human_session(user, dev, t)
                sessions += 1
        share = BOT_SESSION_SHARE
        for _ in range(_poisson(rng, sessions * share / (1 - share))):
            self.bot_session(day_start + rng.randrange(DAY_MS))

    def _local_time(self, offset_ms: int) -> int:
        """A UTC time of day (ms) whose local hour follows the diurnal curve."""
        rng = self.rng
        hour = bisect.bisect(self.hour_cum, rng.random() * self.hour_cum[-1])
        local = min(hour, 23) * HOUR_MS + rng.randrange(HOUR_MS)
        return (local - offset_ms) % DAY_MS


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, rng.random()
    while p > threshold:
        k += 1
        p *= rng.random()
    return k

"""The shop's iOS and Android apps: installs, app sessions and screens, as the Snowplow mobile
trackers (v6) send them.

Some of the shop's web users also install an app (and, with an account, sign in there: one
customer on the web and in the app); a few people use only the app. Every event carries the
mobile trackers' entities: ``client_session`` (the install's userId, the sessionId), ``screen``
(the current screen), ``mobile_context`` and ``application``, and ``geolocation_context`` where
the app may read the location. A session is a ``screen_view`` per screen, with a ``screen_end``
carrying the screen's ``screen_summary`` (foreground and background seconds, list items
scrolled) before the next one, ``application_background``/``application_foreground`` around
breaks shorter than the background timeout (the session goes on) and at the end, and the
e-commerce actions the web sends (product views, carts, transactions).

The apps draw from their own random sequence and deliver through their own ``Delivery``, so
the web stream of a config is the same with or without them.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from dataclasses import dataclass, field

from loader.contract import FIELD_INDEX
from loader.sources.synthetic.catalog import Product
from loader.sources.synthetic.config import SyntheticConfig
from loader.sources.synthetic.delivery import Delivery
from loader.sources.synthetic.shoppers import Sim, _poisson, _User
from loader.sources.synthetic.tables import (
    ACTIONS,
    APP_BACKGROUND,
    APP_BACKGROUND_SCHEMA,
    APP_BACKGROUND_TIMEOUT_MS,
    APP_DEVICES,
    APP_FOREGROUND,
    APP_FOREGROUND_SCHEMA,
    APP_ID,
    APP_INSTALL,
    APP_INSTALL_SCHEMA,
    APP_LOGIN_P,
    APP_ONLY_USERS,
    APP_USER_P,
    APP_VERSIONS,
    APPLICATION_SCHEMA,
    BACKGROUND_P,
    BUY_P,
    CART_SCHEMA,
    CATEGORY_NAMES,
    CLIENT_SESSION_SCHEMA,
    CONTEXTS,
    CURRENCY,
    DAY_MS,
    ECOM_ACTION,
    GEOLOCATION_SCHEMA,
    HOUR_MS,
    HUMAN_DERIVED,
    IP_PREFIXES,
    LOCATIONS,
    MOBILE_CONTEXT_SCHEMA,
    N_FIELDS,
    PAYMENT_METHODS,
    SCREEN_END,
    SCREEN_END_SCHEMA,
    SCREEN_SCHEMA,
    SCREEN_SUMMARY_SCHEMA,
    SCREEN_VIEW,
    SCREEN_VIEW_SCHEMA,
    SESSION_RATE,
    TRANSACTION_SCHEMA,
    UNSTRUCT,
    USER_ID,
    contexts_json,
    cumulative,
    unstruct_json,
)

Entity = dict[str, object]


@dataclass(slots=True)
class _Screen:
    name: str
    type: str
    id: str
    product: Product | None = None
    items: int = 0  # a list screen's length


@dataclass(slots=True)
class _Install:
    """One app on one phone: its client_session userId and what the tracker reports of it."""

    base: list[str]
    install_id: str
    entities: list[Entity]  # mobile_context, application, geolocation (fixed per install)
    skew_ms: int
    session_idx: int = 0
    session_id: str | None = None
    last_ms: int = -(10**15)
    installed: bool = False
    foregrounds: int = 0
    backgrounds: int = 0


@dataclass(slots=True)
class _AppUser:
    user: _User  # the web user it also is, or an app-only user
    install: _Install
    first_day: int
    rate: float  # app sessions per day
    logged_in: bool = False


@dataclass(slots=True)
class _Visit:
    """The state of one app session while it is simulated."""

    row: list[str]
    client_session: Entity
    events: int = 0
    screen: _Screen | None = None
    cart: list[tuple[Product, int]] = field(default_factory=list)


class Apps:
    """App users beside the web shop's ``Sim``: reads its users, catalog and calibration (data
    only), draws from its own random sequence and delivers through its own ``out``."""

    def __init__(self, cfg: SyntheticConfig, sim: Sim) -> None:
        self.cfg = cfg
        self.sim = sim
        self.rng = random.Random(f"persona-apps-{cfg.seed}")
        self.out = Delivery(self.rng)
        self.orders = 0
        self.device_cum = cumulative([d[-1] for d in APP_DEVICES])
        self.template = [""] * N_FIELDS
        for name, value in (
            ("platform", "mob"),
            ("v_collector", "ssc-3.2.0-kinesis"),
            ("v_etl", "snowplow-enrich-kinesis-4.2.0"),
            ("derived_contexts", HUMAN_DERIVED),
        ):
            self.template[FIELD_INDEX[name]] = value
        rng = self.rng
        self.users = [
            self._app_user(user, user.first_day + rng.randrange(max(1, cfg.days - user.first_day)))
            for user in sim.users
            if rng.random() < APP_USER_P[user.registered]
        ]
        for i in range(round(cfg.users * APP_ONLY_USERS)):
            self.users.append(self._app_user(self._app_only_user(i), rng.randrange(cfg.days)))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _app_only_user(self, i: int) -> _User:
        rng = self.rng
        raw = [rng.gammavariate(0.25, 1.0) + 1e-9 for _ in CATEGORY_NAMES]
        taste = [w / sum(raw) for w in raw]
        loc = LOCATIONS[bisect.bisect(self.sim.loc_cum, rng.random() * self.sim.loc_cum[-1])]
        activity = min(rng.paretovariate(1.2), 50.0)
        return _User(f"app_{i:06d}", rng.random() < 0.4, taste, cumulative(taste),
                     activity * SESSION_RATE, 0, loc[6] * HOUR_MS, [], [])  # fmt: skip

    def _app_user(self, user: _User, first_day: int) -> _AppUser:
        rng = self.rng
        os_type, os_version, maker, model, screen, ua, _w = APP_DEVICES[
            bisect.bisect(self.device_cum, rng.random() * self.device_cum[-1])
        ]
        loc = next(
            (loc for loc in LOCATIONS if loc[6] * HOUR_MS == user.utc_offset_ms), LOCATIONS[0]
        )
        version, build = rng.choice(APP_VERSIONS)
        row = self.template.copy()
        for name, value in (
            ("app_id", f"{APP_ID}-{os_type}"),
            ("name_tracker", "ios" if os_type == "ios" else "androidtracker"),
            ("v_tracker", "ios-6.0.8" if os_type == "ios" else "andr-6.0.8"),
            ("network_userid", self._uuid()),  # the collector's cookie, kept by the app's client
            ("user_ipaddress", f"{rng.choice(IP_PREFIXES)}.x"),
            ("geo_country", loc[0]),
            ("geo_region", loc[1]),
            ("geo_region_name", loc[2]),
            ("geo_city", loc[3]),
            ("geo_zipcode", loc[4]),
            ("geo_timezone", loc[5]),
            ("useragent", ua),
            ("br_lang", loc[9]),
            ("os_timezone", loc[5]),
            ("dvce_screenwidth", str(screen[0])),
            ("dvce_screenheight", str(screen[1])),
        ):
            row[FIELD_INDEX[name]] = value
        entities: list[Entity] = [
            {"schema": MOBILE_CONTEXT_SCHEMA, "data": {
                "osType": os_type, "osVersion": os_version, "deviceManufacturer": maker,
                "deviceModel": model, "networkType": rng.choice(("wifi", "wifi", "mobile")),
                "carrier": rng.choice(("Telekom", "Vodafone", "O2", "Orange", "T-Mobile")),
            }},
            {"schema": APPLICATION_SCHEMA, "data": {"version": version, "build": build}},
        ]  # fmt: skip
        if rng.random() < 0.3:  # the user let the app read the location
            jitter = rng.uniform(-0.05, 0.05)
            entities.append({"schema": GEOLOCATION_SCHEMA, "data": {
                "latitude": round(loc[7] + jitter, 4), "longitude": round(loc[8] - jitter, 4),
            }})  # fmt: skip
        skew = int(rng.gauss(0, 800))
        install = _Install(row, self._uuid(), entities, skew)
        rate = user.rate * rng.uniform(0.5, 1.5)
        return _AppUser(user, install, first_day, rate)

    # ---------------------------------------------------------------- events

    def _emit(
        self,
        visit: _Visit,
        kind: tuple[str, ...],
        t: int,
        skew: int,
        install: _Install,
        unstruct: str = "",
        extra: list[Entity] | None = None,
    ) -> None:
        visit.events += 1
        visit.client_session["eventIndex"] = visit.events
        row = visit.row.copy()
        row[UNSTRUCT] = unstruct
        entities: list[Entity] = [{"schema": CLIENT_SESSION_SCHEMA,
                                   "data": dict(visit.client_session)}]  # fmt: skip
        if visit.screen is not None:
            s = visit.screen
            entities.append({"schema": SCREEN_SCHEMA,
                             "data": {"name": s.name, "type": s.type, "id": s.id}})  # fmt: skip
        row[CONTEXTS] = contexts_json([*entities, *install.entities, *(extra or [])])
        self.out.emit(row, kind, t, skew)

    @staticmethod
    def _summary(foreground_ms: int, background_ms: int, screen: _Screen, seen: int) -> Entity:
        data: dict[str, object] = {
            "foreground_sec": round(foreground_ms / 1000, 3),
            "background_sec": round(background_ms / 1000, 3),
        }
        if screen.items:
            data["last_item_index"] = seen - 1
            data["items_count"] = screen.items
        return {"schema": SCREEN_SUMMARY_SCHEMA, "data": data}

    def _pick_product(self, user: _User) -> Product:
        rng, sim = self.rng, self.sim
        cum = user.taste_cum if rng.random() < 0.8 else sim.cat_pop_cum
        cat = CATEGORY_NAMES[min(bisect.bisect(cum, rng.random() * cum[-1]), len(cum) - 1)]
        items, icum = sim.by_cat[cat]
        return items[min(bisect.bisect(icum, rng.random() * icum[-1]), len(items) - 1)]

    def _next_screen(self, user: _User, screen: _Screen | None) -> _Screen:
        rng = self.rng
        r = rng.random()
        if screen is None or (screen.type == "detail" and r < 0.3):
            return _Screen("Home", "feed", self._uuid(), items=rng.randint(20, 60))
        if (screen.type in ("feed", "list") and r < 0.8) or r < 0.5:
            return _Screen("Product", "detail", self._uuid(), product=self._pick_product(user))
        return _Screen("Category", "list", self._uuid(), items=rng.randint(20, 80))

    def _screen(self, au: _AppUser, visit: _Visit, screen: _Screen, t: int) -> tuple[int, Entity]:
        """Show ``screen`` from ``t``: its screen view, actions and engagement, maybe a break in
        the background; returns when the user leaves it, and its final screen_summary."""
        rng, install = self.rng, au.install
        skew = install.skew_ms
        prev = visit.screen
        view: dict[str, object] = {"name": screen.name, "id": screen.id, "type": screen.type}
        if prev is not None:
            view |= {"previousName": prev.name, "previousId": prev.id,
                     "previousType": prev.type, "transitionType": "push"}  # fmt: skip
        visit.screen = screen
        self._emit(visit, SCREEN_VIEW, t, skew, install, unstruct_json(SCREEN_VIEW_SCHEMA, view))
        engaged = int(rng.lognormvariate(math.log(12_000), 0.8)) + 1000
        background = 0
        if screen.product is not None:
            product = screen.product
            entity = Sim._product_entity(product)
            self._emit(visit, ECOM_ACTION, t + rng.randint(100, 500), skew, install,
                       ACTIONS["product_view"], [entity])  # fmt: skip
            affinity = au.user.taste[CATEGORY_NAMES.index(product.category)]
            if rng.random() < 0.03 + 0.12 * affinity:
                qty = 1 if rng.random() < 0.85 else 2
                visit.cart.append((product, qty))
                total = round(sum(p.price * q for p, q in visit.cart), 2)
                engaged = max(engaged, 4000)
                cart: Entity = {
                    "schema": CART_SCHEMA,
                    "data": {"total_value": total, "currency": CURRENCY},
                }
                self._emit(
                    visit,
                    ECOM_ACTION,
                    t + rng.randint(2000, engaged),
                    skew,
                    install,
                    ACTIONS["add_to_cart"],
                    [Sim._product_entity(product, qty), cart],
                )
        seen = rng.randint(1, screen.items) if screen.items else 0
        if rng.random() < BACKGROUND_P:
            # a break shorter than the background timeout: the session goes on
            before = rng.randint(1000, engaged)
            background = rng.randint(30_000, APP_BACKGROUND_TIMEOUT_MS - 60_000)
            install.backgrounds += 1
            self._emit(visit, APP_BACKGROUND, t + before, skew, install,
                       unstruct_json(APP_BACKGROUND_SCHEMA,
                                     {"backgroundIndex": install.backgrounds}),
                       [self._summary(before, 0, screen, seen)])  # fmt: skip
            install.foregrounds += 1
            self._emit(visit, APP_FOREGROUND, t + before + background, skew, install,
                       unstruct_json(APP_FOREGROUND_SCHEMA,
                                     {"foregroundIndex": install.foregrounds}),
                       [self._summary(before, background, screen, seen)])  # fmt: skip
        return t + engaged + background, self._summary(engaged, background, screen, seen)

    def session(self, au: _AppUser, t: int) -> None:
        rng, install = self.rng, au.install
        install.session_idx += 1
        previous, install.session_id = install.session_id, self._uuid()
        row = install.base.copy()
        if au.user.registered and (au.logged_in or rng.random() < APP_LOGIN_P):
            au.logged_in = True  # apps keep their users signed in
            row[USER_ID] = au.user.user_id
        client_session: Entity = {
            "userId": install.install_id, "sessionId": install.session_id,
            "sessionIndex": install.session_idx, "previousSessionId": previous,
            "storageMechanism": "SQLITE",
        }  # fmt: skip
        visit = _Visit(row, client_session)
        skew = install.skew_ms
        if not install.installed:
            install.installed = True
            self._emit(visit, APP_INSTALL, t, skew, install, unstruct_json(APP_INSTALL_SCHEMA, {}))
        install.foregrounds += 1
        self._emit(
            visit,
            APP_FOREGROUND,
            t + 50,
            skew,
            install,
            unstruct_json(APP_FOREGROUND_SCHEMA, {"foregroundIndex": install.foregrounds}),
        )
        t += 400
        screen = self._next_screen(au.user, None)
        checkout: list[_Screen] = []
        n = 0
        while True:
            left, summary = self._screen(au, visit, screen, t)
            n += 1
            if checkout:
                nxt: _Screen | None = checkout.pop(0)
            elif n < 25 and rng.random() < 0.7:
                nxt = self._next_screen(au.user, screen)
            elif visit.cart and rng.random() < BUY_P:
                checkout = [_Screen("Checkout", "checkout", self._uuid()),
                            _Screen("Confirmation", "confirmation", self._uuid())]  # fmt: skip
                nxt = _Screen("Cart", "cart", self._uuid())
            else:
                nxt = None
            if nxt is None:
                break
            self._emit(visit, SCREEN_END, left, skew, install,
                       unstruct_json(SCREEN_END_SCHEMA, {}), [summary])  # fmt: skip
            if nxt.type == "confirmation" and visit.cart:
                self._order(visit, install, left + 300)
            screen, t = nxt, left + rng.randint(200, 900)
        install.backgrounds += 1
        self._emit(visit, APP_BACKGROUND, left, skew, install,
                   unstruct_json(APP_BACKGROUND_SCHEMA, {"backgroundIndex": install.backgrounds}),
                   [summary])  # fmt: skip
        install.last_ms = left

    def _order(self, visit: _Visit, install: _Install, t: int) -> None:
        self.orders += 1
        cart = visit.cart
        txn = {
            "transaction_id": f"ord-{self.cfg.seed}-app-{self.orders:06d}",
            "revenue": round(sum(p.price * q for p, q in cart), 2),
            "currency": CURRENCY,
            "payment_method": self.rng.choice(PAYMENT_METHODS),
            "total_quantity": sum(q for _p, q in cart),
        }
        items = [Sim._product_entity(p, q) for p, q in cart]
        self._emit(visit, ECOM_ACTION, t, install.skew_ms, install, ACTIONS["transaction"],
                   [*items, {"schema": TRANSACTION_SCHEMA, "data": txn}])  # fmt: skip
        cart.clear()

    # ---------------------------------------------------------------- days

    def simulate_day(self, day: int) -> None:
        rng, sim = self.rng, self.sim
        day_start = sim.start_ms + day * DAY_MS
        for au in self.users:
            if day < au.first_day:
                continue
            starts = []
            for _ in range(_poisson(rng, au.rate)):
                hour = bisect.bisect(sim.hour_cum, rng.random() * sim.hour_cum[-1])
                local = min(hour, 23) * HOUR_MS + rng.randrange(HOUR_MS)
                starts.append(day_start + (local - au.user.utc_offset_ms) % DAY_MS)
            for start in sorted(starts):
                gap = APP_BACKGROUND_TIMEOUT_MS + rng.randint(1, 20) * 60_000
                self.session(au, max(start, au.install.last_ms + gap))

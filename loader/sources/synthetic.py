"""A deterministic synthetic behavioural stream, written as Snowplow enriched TSV.

Why: the loader, the dbt models and the personalisation layer need input that looks like what a
real Snowplow pipeline delivers (sessions, cross-device identities, e-commerce funnels, bots,
duplicates and late arrivals) without a tracker, a collector or customer data. The stream is a
pure function of ``SyntheticConfig``: same config, same bytes, so tests and benchmarks can rely
on it. Lines come out in arrival order (``collector_tstamp``), as a pipeline would read them.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loader.contract import FIELDS
from loader.enriched import Event, parse_line
from loader.failed import FailedEvent

__all__ = ["Product", "SyntheticConfig", "catalog", "generate_lines"]

APP_ID = "persona-shop"
HOST = "shop.persona.dev"
CURRENCY = "EUR"

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_SESSION_TIMEOUT_MS = 30 * 60_000
_EPOCH = datetime(1970, 1, 1)

# Calibration: expected sessions per user-day per unit of activity (activity is heavy-tailed,
# mean ~3.7), chosen so that the default config yields ~200k lines.
_SESSION_RATE = 0.06
_BOT_SESSION_SHARE = 0.02
_LATE_P = 0.005  # events sent hours to days after they happened
_DUP_EXACT_P = 0.0025  # identical line delivered twice (at-least-once collector/stream)
_DUP_RESENT_P = 0.0025  # tracker retry: same event, later dvce_sent/collector tstamps
_REGISTERED_P = 0.2  # base share of users with an account (the rest shop as guests)
_BUY_P = 0.3  # chance that a session ending with a non-empty cart checks out

_MILLIS = tuple(f"{m:03d}" for m in range(1000))

_I = {f.name: i for i, f in enumerate(FIELDS)}
_N = len(FIELDS)
_EVENT_ID, _FINGERPRINT = _I["event_id"], _I["event_fingerprint"]
_ETL, _COLLECTOR, _CREATED = _I["etl_tstamp"], _I["collector_tstamp"], _I["dvce_created_tstamp"]
_SENT, _DERIVED = _I["dvce_sent_tstamp"], _I["derived_tstamp"]
_CONTEXTS, _UNSTRUCT, _USER_ID = _I["contexts"], _I["unstruct_event"], _I["user_id"]
_PP = tuple(_I[f"pp_{a}offset_{m}"] for a in "xy" for m in ("min", "max"))
_KIND = tuple(
    _I[n] for n in ("event", "event_vendor", "event_name", "event_format", "event_version")
)

_SP = "com.snowplowanalytics.snowplow"
_ECOM = "com.snowplowanalytics.snowplow.ecommerce"
_PAGE_VIEW = ("page_view", _SP, "page_view", "jsonschema", "1-0-0")
_PAGE_PING = ("page_ping", _SP, "page_ping", "jsonschema", "1-0-0")
_ECOM_ACTION = ("unstruct", _ECOM, "snowplow_ecommerce_action", "jsonschema", "1-0-2")
_SITE_SEARCH = ("unstruct", _SP, "site_search", "jsonschema", "1-0-0")

_CONTEXTS_SCHEMA = f"iglu:{_SP}/contexts/jsonschema/1-0-0"
_UNSTRUCT_SCHEMA = f"iglu:{_SP}/unstruct_event/jsonschema/1-0-0"
_WEB_PAGE_SCHEMA = f"iglu:{_SP}/web_page/jsonschema/1-0-0"
_ACTION_SCHEMA = f"iglu:{_ECOM}/snowplow_ecommerce_action/jsonschema/1-0-2"
_PRODUCT_SCHEMA = f"iglu:{_ECOM}/product/jsonschema/1-0-0"
_CART_SCHEMA = f"iglu:{_ECOM}/cart/jsonschema/1-0-0"
_TRANSACTION_SCHEMA = f"iglu:{_ECOM}/transaction/jsonschema/1-0-0"
_SEARCH_SCHEMA = f"iglu:{_SP}/site_search/jsonschema/1-0-0"
_IAB_SCHEMA = "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _contexts(entities: Sequence[Mapping[str, object]]) -> str:
    return _dumps({"schema": _CONTEXTS_SCHEMA, "data": entities})


def _unstruct(schema: str, data: dict[str, object]) -> str:
    return _dumps({"schema": _UNSTRUCT_SCHEMA, "data": {"schema": schema, "data": data}})


def _iab(bot: bool) -> str:
    data = (
        {
            "spiderOrRobot": True,
            "category": "SPIDER_OR_ROBOT",
            "reason": "FAILED_UA_INCLUDE",
            "primaryImpact": "UNKNOWN",
        }
        if bot
        else {
            "spiderOrRobot": False,
            "category": "BROWSER",
            "reason": "PASSED_ALL",
            "primaryImpact": "NONE",
        }
    )
    return _contexts([{"schema": _IAB_SCHEMA, "data": data}])


_HUMAN_DERIVED, _BOT_DERIVED = _iab(False), _iab(True)
_ACTIONS = {
    t: _unstruct(_ACTION_SCHEMA, {"type": t})
    for t in ("product_view", "add_to_cart", "transaction")
}


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Product:
    """A catalog item; ``popularity`` is a Zipf weight (sums to 1 over the catalog)."""

    id: str
    name: str
    category: str
    price: float
    popularity: float


# (category, price low, price high, product nouns); nouns double as site-search vocabulary.
_CATEGORIES: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("shoes", 39, 189, ("Runner", "Sneaker", "Loafer", "Chelsea Boot", "Trail Shoe")),
    ("jackets", 59, 349, ("Parka", "Bomber", "Rain Jacket", "Puffer", "Field Jacket")),
    ("bags", 25, 259, ("Tote", "Backpack", "Crossbody Bag", "Weekender", "Messenger Bag")),
    ("t-shirts", 12, 45, ("Tee", "Pocket Tee", "Longsleeve", "Polo", "Tank Top")),
    (
        "jeans",
        39,
        139,
        ("Slim Jeans", "Straight Jeans", "Wide Jeans", "Tapered Jeans", "Selvedge Jeans"),
    ),
    ("dresses", 29, 199, ("Midi Dress", "Wrap Dress", "Shirt Dress", "Maxi Dress", "Slip Dress")),
    ("knitwear", 35, 169, ("Cardigan", "Crewneck", "Turtleneck", "Hoodie", "Knit Vest")),
    ("accessories", 8, 59, ("Beanie", "Scarf", "Belt", "Cap", "Gloves")),
    ("watches", 79, 449, ("Chronograph", "Field Watch", "Diver", "Dress Watch", "Smartwatch")),
    (
        "sunglasses",
        19,
        179,
        ("Aviator", "Wayfarer", "Round Sunglasses", "Sport Shades", "Cat-Eye Sunglasses"),
    ),
    (
        "sportswear",
        19,
        119,
        ("Running Tights", "Training Shorts", "Sports Bra", "Track Jacket", "Base Layer"),
    ),
    ("outdoor", 29, 299, ("Tent", "Sleeping Bag", "Trekking Poles", "Hiking Pack", "Headlamp")),
)
_CATEGORY_NAMES = tuple(c[0] for c in _CATEGORIES)
_ADJECTIVES = (
    "Urban",
    "Classic",
    "Nordic",
    "Coastal",
    "Alpine",
    "Studio",
    "Everyday",
    "Vintage",
    "Essential",
    "Summit",
)
_COLORS = ("Black", "Navy", "Sand", "Olive", "White", "Grey", "Burgundy", "Rust")
_PRODUCTS_PER_CATEGORY = 25


def catalog(seed: int = 0) -> list[Product]:
    """The shop's ~300 products; a pure function of ``seed`` so recommenders can rebuild it."""
    rng = random.Random(seed)
    n = len(_CATEGORIES) * _PRODUCTS_PER_CATEGORY
    ranks = list(range(1, n + 1))
    rng.shuffle(ranks)
    weights = [1.0 / r**1.1 for r in ranks]
    total = sum(weights)
    names: dict[str, list[str]] = {}
    for cat, _lo, _hi, nouns in _CATEGORIES:
        combos = [(a, n_, c) for a in _ADJECTIVES for n_ in nouns for c in _COLORS]
        names[cat] = [f"{a} {n_} ({c})" for a, n_, c in rng.sample(combos, _PRODUCTS_PER_CATEGORY)]
    products = []
    for i in range(n):
        cat, lo, hi, _nouns = _CATEGORIES[i % len(_CATEGORIES)]
        price = round(lo * (hi / lo) ** rng.random()) - 0.01  # log-uniform, ends in .99
        name = names[cat][i // len(_CATEGORIES)]
        products.append(Product(f"sku-{i + 1:04d}", name, cat, price, weights[i] / total))
    return products


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the simulated shop; the defaults give ~200k events over 30 days."""

    users: int = 2000
    days: int = 30
    seed: int = 0
    start: datetime = datetime(2026, 1, 1)  # naive UTC

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, got {self.users}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")


# country, region, region name, city, zipcode, timezone, UTC offset (h, winter), lat, lon,
# language, weight
_LOCATIONS = (
    ("DE", "BE", "Berlin", "Berlin", "10115", "Europe/Berlin", 1, 52.52, 13.405, "de-DE", 14),
    ("DE", "BY", "Bavaria", "Munich", "80331", "Europe/Berlin", 1, 48.1372, 11.5756, "de-DE", 9),
    ("DE", "HH", "Hamburg", "Hamburg", "20095", "Europe/Berlin", 1, 53.5511, 9.9937, "de-DE", 7),
    (
        "FR",
        "IDF",
        "Ile-de-France",
        "Paris",
        "75001",
        "Europe/Paris",
        1,
        48.8566,
        2.3522,
        "fr-FR",
        12,
    ),
    ("GB", "ENG", "England", "London", "EC1A", "Europe/London", 0, 51.5074, -0.1278, "en-GB", 14),
    (
        "NL",
        "NH",
        "North Holland",
        "Amsterdam",
        "1012",
        "Europe/Amsterdam",
        1,
        52.3676,
        4.9041,
        "nl-NL",
        8,
    ),
    ("ES", "MD", "Madrid", "Madrid", "28001", "Europe/Madrid", 1, 40.4168, -3.7038, "es-ES", 8),
    (
        "US",
        "NY",
        "New York",
        "New York",
        "10001",
        "America/New_York",
        -5,
        40.7128,
        -74.006,
        "en-US",
        10,
    ),
    (
        "US",
        "CA",
        "California",
        "San Francisco",
        "94103",
        "America/Los_Angeles",
        -8,
        37.7749,
        -122.4194,
        "en-US",
        6,
    ),
)

# name, useragent, screens, weight. Viewports are derived from the screen per device.
_PROFILES = (
    (
        "chrome-win",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/131.0.0.0 Safari/537.36",
        ((1920, 1080), (1366, 768), (1536, 864), (2560, 1440)),
        26,
    ),
    (
        "safari-mac",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/18.1 Safari/605.1.15",
        ((1440, 900), (1512, 982), (1728, 1117)),
        12,
    ),
    (
        "firefox-win",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ((1920, 1080), (1366, 768)),
        6,
    ),
    (
        "safari-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        ((390, 844), (393, 852), (430, 932), (375, 812)),
        30,
    ),
    (
        "chrome-android",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/131.0.0.0 Mobile Safari/537.36",
        ((412, 915), (360, 800), (384, 854)),
        20,
    ),
    (
        "safari-ipad",
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        ((810, 1080), (820, 1180)),
        6,
    ),
)

# useragent, anonymised IP, geo (country, region, region name, city, timezone, lat, lon)
_BOTS = (
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
        "+http://www.google.com/bot.html)",
        "66.249.66.x",
        ("US", "CA", "California", "Mountain View", "America/Los_Angeles", 37.4056, -122.0775),
        6,
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/131.0.0.0 Safari/537.36",
        "157.55.39.x",
        ("US", "VA", "Virginia", "Boydton", "America/New_York", 36.6676, -78.3875),
        3,
    ),
    (
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "54.36.148.x",
        ("FR", "HDF", "Hauts-de-France", "Roubaix", "Europe/Paris", 50.6942, 3.1746),
        2,
    ),
)

_DOC_HEIGHTS = {"home": 4200, "category": 5600, "product": 3400, "search": 4800}
_IP_PREFIXES = ("203.0.113", "198.51.100", "192.0.2")
# Local hour-of-day session weights: quiet nights, lunch bump, evening peak.
_HOURS = (
    1.0,
    0.6,
    0.4,
    0.3,
    0.3,
    0.5,
    1.0,
    2.0,
    3.0,
    3.5,
    3.5,
    3.5,
    4.2,
    4.0,
    3.5,
    3.5,
    3.6,
    4.0,
    5.0,
    6.0,
    6.5,
    6.0,
    4.5,
    2.5,
)
_PAYMENT_METHODS = ("card", "card", "card", "paypal", "paypal", "klarna", "apple_pay")
_EMAIL_CAMPAIGNS = ("weekly_digest", "winter_sale", "new_arrivals", "back_in_stock")
_FIRST_NAMES = (
    "anna",
    "ben",
    "clara",
    "david",
    "emma",
    "felix",
    "hanna",
    "jonas",
    "lea",
    "max",
    "mia",
    "noah",
    "sofia",
    "tom",
    "zoe",
    "lucas",
    "julia",
    "paul",
    "marie",
    "elias",
)
_LAST_NAMES = (
    "mueller",
    "schmidt",
    "martin",
    "smith",
    "garcia",
    "dubois",
    "jansen",
    "rossi",
    "weber",
    "brown",
    "fischer",
    "lopez",
)

# Traffic sources and their weights; referrers as (url, host, refr_medium, refr_source).
_SOURCES = (
    ("direct", 32),
    ("search", 30),
    ("social", 10),
    ("email", 12),
    ("paid", 16),
)
_REFERRERS = {
    "google": ("https://www.google.com/", "www.google.com", "search", "Google"),
    "facebook": ("https://l.facebook.com/", "l.facebook.com", "social", "Facebook"),
    "instagram": ("https://www.instagram.com/", "www.instagram.com", "social", "Instagram"),
    "gmail": ("https://mail.google.com/", "mail.google.com", "email", "Gmail"),
}


def _cum(weights: list[float] | tuple[float, ...]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


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


class _Sim:
    """Holds the world and the not-yet-emitted events of the stream."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.products = catalog(cfg.seed)
        self.by_cat: dict[str, tuple[list[Product], list[float]]] = {}
        for cat in _CATEGORY_NAMES:
            items = [p for p in self.products if p.category == cat]
            self.by_cat[cat] = (items, _cum([p.popularity for p in items]))
        self.cat_pop_cum = _cum(
            [sum(p.popularity for p in self.by_cat[c][0]) for c in _CATEGORY_NAMES]
        )
        self.all_cum = _cum([p.popularity for p in self.products])
        self.buffer: list[tuple[int, int, str]] = []
        self.seq = 0
        self.orders = 0
        self.dates: dict[int, str] = {}
        self.clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
        start = cfg.start
        if start.tzinfo is not None:
            start = start.astimezone(UTC).replace(tzinfo=None)
        self.start_ms = (start - _EPOCH) // timedelta(milliseconds=1)
        self.template = [""] * _N
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
            self.template[_I[name]] = value
        self.loc_cum = _cum([loc[-1] for loc in _LOCATIONS])
        self.profile_cum = _cum([p[-1] for p in _PROFILES])
        self.hour_cum = _cum(_HOURS)
        self.source_cum = _cum([w for _s, w in _SOURCES])
        self.bot_cum = _cum([b[-1] for b in _BOTS])
        self.users = [self._user(i) for i in range(cfg.users)]

    # ---------------------------------------------------------------- world building

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _user(self, i: int) -> _User:
        rng = self.rng
        if rng.random() < 0.75:
            user_id = f"u_{i:06d}"
        else:
            user_id = f"{rng.choice(_FIRST_NAMES)}.{rng.choice(_LAST_NAMES)}{i}@example.com"
        # Dirichlet(0.25): most of the mass lands on 1-3 categories.
        raw = [rng.gammavariate(0.25, 1.0) + 1e-9 for _ in _CATEGORY_NAMES]
        total = sum(raw)
        taste = [w / total for w in raw]
        activity = min(rng.paretovariate(1.2), 50.0)  # heavy tail: a few users visit daily
        first_day = 0 if rng.random() < 0.6 else rng.randrange(self.cfg.days)
        loc = _LOCATIONS[bisect.bisect(self.loc_cum, rng.random() * self.loc_cum[-1])]
        n_devices = 1 if rng.random() < 0.7 else rng.choice((2, 2, 3))
        devices = [self._device(loc) for _ in range(n_devices)]
        device_w = [1.0] + [rng.uniform(0.4, 1.0) for _ in range(n_devices - 1)]
        # Frequent visitors, and people who shop on several devices, are likelier to have an
        # account: it is what keeps their cart and orders in sync.
        p_account = _REGISTERED_P + 0.02 * activity + 0.2 * (n_devices > 1)
        registered = rng.random() < min(0.85, p_account)
        return _User(
            user_id,
            registered,
            taste,
            _cum(taste),
            activity * _SESSION_RATE,
            first_day,
            loc[6] * _HOUR_MS,
            devices,
            _cum(device_w),
        )

    def _device(self, loc: tuple[Any, ...]) -> _Device:
        rng = self.rng
        _name, ua, screens, _w = _PROFILES[
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
            ("user_ipaddress", f"{rng.choice(_IP_PREFIXES)}.x"),
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
            ("derived_contexts", _HUMAN_DERIVED),
        ):
            row[_I[name]] = value
        skew = int(rng.gauss(0, 1500)) if rng.random() < 0.95 else rng.randint(-3600, 3600) * 1000
        return _Device(row, view, skew)

    def _pick_category(self, user: _User | None) -> str:
        rng = self.rng
        cum = user.taste_cum if user is not None and rng.random() < 0.8 else self.cat_pop_cum
        return _CATEGORY_NAMES[min(bisect.bisect(cum, rng.random() * cum[-1]), len(cum) - 1)]

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
        nouns = _CATEGORIES[_CATEGORY_NAMES.index(cat)][3]
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
            return page, _REFERRERS["google"]
        if source == "social":
            page = (
                self._product_page(self._pick_product(cat))
                if roll < 0.7
                else self._category_page(cat)
            )
            return page, _REFERRERS[rng.choice(("facebook", "facebook", "instagram"))]
        if source == "email":
            page = (
                self._category_page(cat)
                if roll < 0.5
                else self._product_page(self._pick_product(cat))
                if roll < 0.8
                else self._home()
            )
            campaign = rng.choice(_EMAIL_CAMPAIGNS)
            page.query = f"utm_source=newsletter&utm_medium=email&utm_campaign={campaign}"
            page.campaign = ("email", "newsletter", "", campaign, "", "")
            return page, (_REFERRERS["gmail"] if rng.random() < 0.3 else None)
        # paid search
        page = (
            self._product_page(self._pick_product(cat)) if roll < 0.6 else self._category_page(cat)
        )
        nouns = _CATEGORIES[_CATEGORY_NAMES.index(cat)][3]
        term = rng.choice(nouns).lower()
        gclid = f"EAIaIQob{rng.getrandbits(160):040x}"
        campaign = f"generic_{cat}"
        page.query = (
            f"utm_source=google&utm_medium=cpc&utm_campaign={campaign}"
            f"&utm_term={term.replace(' ', '+')}&gclid={gclid}"
        )
        page.campaign = ("cpc", "google", term, campaign, gclid, "Google")
        return page, _REFERRERS["google"]

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
        srow[_I["domain_sessionidx"]] = str(dev.session_idx)
        srow[_I["domain_sessionid"]] = self._uuid()
        source = _SOURCES[bisect.bisect(self.source_cum, rng.random() * self.source_cum[-1])][0]
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
            elif cart and page.kind != "confirmation" and rng.random() < _BUY_P:
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
        row[_I["page_url"]] = page.url
        row[_I["page_title"]] = page.title
        row[_I["page_urlpath"]] = page.path
        row[_I["page_urlquery"]] = page.query
        row[_USER_ID] = user_id
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
                row[_I[name]] = value
            row[_I["refr_urlport"]] = "443"
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
                row[_I[name]] = value
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
        doc_height = _DOC_HEIGHTS.get(page.kind, 1500) + rng.randint(-300, 300)
        row[_I["doc_height"]] = str(doc_height)
        web_page = {"schema": _WEB_PAGE_SCHEMA, "data": {"id": self._uuid()}}
        row[_CONTEXTS] = _contexts([web_page])
        skew = dev.skew_ms
        self._emit(row, _PAGE_VIEW, t0, skew)
        end = t0
        engaged = int(rng.lognormvariate(math.log(13_000), 0.9))
        if page.kind in ("checkout", "cart"):
            engaged = min(engaged, 120_000)
        if page.kind == "product":
            assert page.product is not None
            product = page.product
            entity = self._product_entity(product)
            ev = row.copy()
            ev[_UNSTRUCT] = _ACTIONS["product_view"]
            ev[_CONTEXTS] = _contexts([web_page, entity])
            end = t0 + rng.randint(30, 400)
            self._emit(ev, _ECOM_ACTION, end, skew)
            affinity = user.taste[_CATEGORY_NAMES.index(product.category)]
            if rng.random() < 0.025 + 0.12 * affinity:
                qty = 1 if rng.random() < 0.85 else 2
                cart.append((product, qty))
                total = round(sum(p.price * q for p, q in cart), 2)
                ev = row.copy()
                ev[_UNSTRUCT] = _ACTIONS["add_to_cart"]
                ev[_CONTEXTS] = _contexts(
                    [
                        web_page,
                        self._product_entity(product, qty),
                        {
                            "schema": _CART_SCHEMA,
                            "data": {"total_value": total, "currency": CURRENCY},
                        },
                    ]
                )
                engaged = max(engaged, 4000)
                end = t0 + rng.randint(3000, engaged)
                self._emit(ev, _ECOM_ACTION, end, skew)
        elif page.kind == "search":
            ev = row.copy()
            results = 0 if rng.random() < 0.05 else rng.randint(1, 60)
            ev[_UNSTRUCT] = _unstruct(
                _SEARCH_SCHEMA, {"terms": list(page.terms), "totalResults": results}
            )
            end = t0 + rng.randint(20, 300)
            self._emit(ev, _SITE_SEARCH, end, skew)
        elif page.kind == "confirmation" and cart:
            self.orders += 1
            revenue = round(sum(p.price * q for p, q in cart), 2)
            txn = {
                "transaction_id": f"ord-{self.cfg.seed}-{self.orders:06d}",
                "revenue": revenue,
                "currency": CURRENCY,
                "payment_method": rng.choice(_PAYMENT_METHODS),
                "total_quantity": sum(q for _p, q in cart),
            }
            ev = row.copy()
            ev[_UNSTRUCT] = _ACTIONS["transaction"]
            ev[_CONTEXTS] = _contexts(
                [
                    web_page,
                    *(self._product_entity(p, q) for p, q in cart),
                    {"schema": _TRANSACTION_SCHEMA, "data": txn},
                ]
            )
            end = t0 + rng.randint(50, 500)
            self._emit(ev, _ECOM_ACTION, end, skew)
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
                ev[_PP[0]], ev[_PP[1]], ev[_PP[2]], ev[_PP[3]] = "0", "0", str(y_min), str(y)
                self._emit(ev, _PAGE_PING, ping_at, skew)
                end = max(end, ping_at)
                ping_at += 10_000
        return max(end, t0 + min(engaged, 5000))

    def bot_session(self, t: int) -> None:
        rng = self.rng
        ua, ip, geo, _w = _BOTS[bisect.bisect(self.bot_cum, rng.random() * self.bot_cum[-1])]
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
            ("derived_contexts", _BOT_DERIVED),
        ):
            srow[_I[name]] = value
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
                page = self._category_page(rng.choice(_CATEGORY_NAMES))
            else:
                page = self._home()
            row = self._page_row(srow, page, prev, None, "")
            row[_I["doc_height"]] = str(rng.randint(1200, 6000))
            web_page = {"schema": _WEB_PAGE_SCHEMA, "data": {"id": self._uuid()}}
            row[_CONTEXTS] = _contexts([web_page])
            self._emit(row, _PAGE_VIEW, t, 0)
            if page.product is not None:  # rendering crawlers run the tracker's page JS
                ev = row.copy()
                ev[_UNSTRUCT] = _ACTIONS["product_view"]
                ev[_CONTEXTS] = _contexts([web_page, self._product_entity(page.product)])
                self._emit(ev, _ECOM_ACTION, t + rng.randint(20, 150), 0)
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
        return {"schema": _PRODUCT_SCHEMA, "data": data}

    # ---------------------------------------------------------------- delivery

    def _fmt(self, ms: int) -> str:
        """``YYYY-MM-DD HH:MM:SS.mmm``; table lookups because it runs ~5 times per event."""
        day, rem = divmod(ms, _DAY_MS)
        date = self.dates.get(day)
        if date is None:
            date = self.dates[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        sec, milli = divmod(rem, 1000)
        return f"{date} {self.clock[sec]}.{_MILLIS[milli]}"

    def _emit(self, row: list[str], kind: tuple[str, ...], created: int, skew: int) -> None:
        """Deliver one event as the pipeline would: mostly on time, sometimes late or twice.

        ``created`` is the true time; the device clock is off by ``skew``.
        """
        rng = self.rng
        for i, v in zip(_KIND, kind, strict=True):
            row[i] = v
        row[_EVENT_ID] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        row[_FINGERPRINT] = f"{rng.getrandbits(128):032x}"
        rand = rng.random
        sent = created + 5 + int(rand() * 300)
        r = rand()
        if r < _LATE_P:  # queued on the device (offline, closed tab) and flushed on a later visit
            u = rng.random()
            hours = (
                rng.uniform(1, 24)
                if u < 0.8
                else rng.uniform(24, 72)
                if u < 0.95
                else (rng.uniform(72, 120))
            )
            sent += int(hours * _HOUR_MS)
        collector = sent + 20 + int(rand() * 230)
        row[_CREATED] = self._fmt(created + skew)
        line = self._push(row, collector, sent + skew, created + skew)
        r -= _LATE_P
        if 0 <= r < _DUP_EXACT_P:
            self._append(collector, line)
        elif 0 <= r - _DUP_EXACT_P < _DUP_RESENT_P:  # tracker retry after a lost response
            delay = int(rng.expovariate(1 / 60_000)) + 1000
            self._push(row, collector + delay, sent + skew + delay, created + skew)

    def _push(self, row: list[str], collector: int, sent_dev: int, created_dev: int) -> str:
        row[_COLLECTOR] = self._fmt(collector)
        row[_SENT] = self._fmt(sent_dev)
        row[_DERIVED] = self._fmt(collector - (sent_dev - created_dev))
        row[_ETL] = self._fmt(collector + 300 + int(self.rng.random() * 2200))
        line = "\t".join(row)
        self._append(collector, line)
        return line

    def _append(self, collector: int, line: str) -> None:
        self.seq += 1
        self.buffer.append((collector, self.seq, line))

    # ---------------------------------------------------------------- days

    def simulate_day(self, day: int) -> None:
        rng = self.rng
        day_start = self.start_ms + day * _DAY_MS
        weekday = (_EPOCH + timedelta(milliseconds=day_start)).weekday()
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
                    dev.last_ms + _SESSION_TIMEOUT_MS + rng.randint(1, 20) * 60_000,
                )
                self.human_session(user, dev, t)
                sessions += 1
        share = _BOT_SESSION_SHARE
        for _ in range(_poisson(rng, sessions * share / (1 - share))):
            self.bot_session(day_start + rng.randrange(_DAY_MS))

    def _local_time(self, offset_ms: int) -> int:
        """A UTC time of day (ms) whose local hour follows the diurnal curve."""
        rng = self.rng
        hour = bisect.bisect(self.hour_cum, rng.random() * self.hour_cum[-1])
        local = min(hour, 23) * _HOUR_MS + rng.randrange(_HOUR_MS)
        return (local - offset_ms) % _DAY_MS

    def flush(self, until: int) -> list[str]:
        """Lines that arrived before ``until``, in arrival order; later ones stay buffered."""
        self.buffer.sort()
        cut = bisect.bisect_left(self.buffer, (until,))
        ready = [line for _c, _s, line in self.buffer[:cut]]
        del self.buffer[:cut]
        return ready


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


def generate_lines(cfg: SyntheticConfig) -> Iterator[str]:
    """Enriched TSV lines (no newline) of ``cfg.days`` days of shop traffic, in arrival order.

    Events are simulated a day at a time and held back until nothing earlier can still arrive,
    so memory stays at about one day of events. Events whose collector time falls after the
    window (late arrivals, retries, sessions running past the end) have not arrived yet and are
    not emitted.
    """
    sim = _Sim(cfg)
    for day in range(cfg.days):
        sim.simulate_day(day)
        yield from sim.flush(sim.start_ms + (day + 1) * _DAY_MS)


class SyntheticSource:
    """``synthetic:?users=N&days=D&seed=S``: the generated stream, through the real parser."""

    finite = True  # loaded in bulk, like a file
    protects_privacy = False

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg

    @property
    def name(self) -> str:
        c = self.cfg
        return f"synthetic:?users={c.users}&days={c.days}&seed={c.seed}"

    def __iter__(self) -> Iterator[Event | FailedEvent]:
        for line in generate_lines(self.cfg):
            yield parse_line(line, self.name)

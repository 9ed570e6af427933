"""The generator's fixed world: event kinds and schemas, calibration, and the lookup tables.
The shop's categories, product words, locations, devices and bots are data
(``data/*.csv``), read once at import."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

from loader.contract import FIELD_INDEX, FIELDS

APP_ID = "persona-shop"
HOST = "shop.persona.dev"
CURRENCY = "EUR"

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SESSION_TIMEOUT_MS = 30 * 60_000
EPOCH = datetime(1970, 1, 1)

# Calibration: expected sessions per user-day per unit of activity (activity is heavy-tailed,
# mean ~3.7), chosen so that the default config yields ~200k lines.
SESSION_RATE = 0.06
BOT_SESSION_SHARE = 0.02
LATE_P = 0.005  # events sent hours to days after they happened
DUP_EXACT_P = 0.0025  # identical line delivered twice (at-least-once collector/stream)
DUP_RESENT_P = 0.0025  # tracker retry: same event, later dvce_sent/collector tstamps
REGISTERED_P = 0.2  # base share of users with an account (the rest shop as guests)
BUY_P = 0.3  # chance that a session ending with a non-empty cart checks out

MILLIS = tuple(f"{m:03d}" for m in range(1000))

N_FIELDS = len(FIELDS)
EVENT_ID, FINGERPRINT = FIELD_INDEX["event_id"], FIELD_INDEX["event_fingerprint"]
ETL, COLLECTOR, CREATED = (
    FIELD_INDEX["etl_tstamp"],
    FIELD_INDEX["collector_tstamp"],
    FIELD_INDEX["dvce_created_tstamp"],
)
SENT, DERIVED = FIELD_INDEX["dvce_sent_tstamp"], FIELD_INDEX["derived_tstamp"]
CONTEXTS, UNSTRUCT, USER_ID = (
    FIELD_INDEX["contexts"],
    FIELD_INDEX["unstruct_event"],
    FIELD_INDEX["user_id"],
)
PP = tuple(FIELD_INDEX[f"pp_{a}offset_{m}"] for a in "xy" for m in ("min", "max"))
KIND = tuple(
    FIELD_INDEX[n] for n in ("event", "event_vendor", "event_name", "event_format", "event_version")
)

SP = "com.snowplowanalytics.snowplow"
ECOM = "com.snowplowanalytics.snowplow.ecommerce"
PAGE_VIEW = ("page_view", SP, "page_view", "jsonschema", "1-0-0")
PAGE_PING = ("page_ping", SP, "page_ping", "jsonschema", "1-0-0")
ECOM_ACTION = ("unstruct", ECOM, "snowplow_ecommerce_action", "jsonschema", "1-0-2")
SITE_SEARCH = ("unstruct", SP, "site_search", "jsonschema", "1-0-0")

CONTEXTS_SCHEMA = f"iglu:{SP}/contexts/jsonschema/1-0-0"
UNSTRUCT_SCHEMA = f"iglu:{SP}/unstruct_event/jsonschema/1-0-0"
WEB_PAGE_SCHEMA = f"iglu:{SP}/web_page/jsonschema/1-0-0"
ACTION_SCHEMA = f"iglu:{ECOM}/snowplow_ecommerce_action/jsonschema/1-0-2"
PRODUCT_SCHEMA = f"iglu:{ECOM}/product/jsonschema/1-0-0"
CART_SCHEMA = f"iglu:{ECOM}/cart/jsonschema/1-0-0"
TRANSACTION_SCHEMA = f"iglu:{ECOM}/transaction/jsonschema/1-0-0"
SEARCH_SCHEMA = f"iglu:{SP}/site_search/jsonschema/1-0-0"
IAB_SCHEMA = "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def contexts_json(entities: Sequence[Mapping[str, object]]) -> str:
    return dumps({"schema": CONTEXTS_SCHEMA, "data": entities})


def unstruct_json(schema: str, data: dict[str, object]) -> str:
    return dumps({"schema": UNSTRUCT_SCHEMA, "data": {"schema": schema, "data": data}})


def iab_json(bot: bool) -> str:
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
    return contexts_json([{"schema": IAB_SCHEMA, "data": data}])


HUMAN_DERIVED, BOT_DERIVED = iab_json(False), iab_json(True)
ACTIONS = {
    t: unstruct_json(ACTION_SCHEMA, {"type": t})
    for t in ("product_view", "add_to_cart", "transaction")
}


DOC_HEIGHTS = {"home": 4200, "category": 5600, "product": 3400, "search": 4800}
IP_PREFIXES = ("203.0.113", "198.51.100", "192.0.2")
# Local hour-of-day session weights: quiet nights, lunch bump, evening peak.
HOURS = (
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
PAYMENT_METHODS = ("card", "card", "card", "paypal", "paypal", "klarna", "apple_pay")
EMAIL_CAMPAIGNS = ("weekly_digest", "winter_sale", "new_arrivals", "back_in_stock")
FIRST_NAMES = (
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
LAST_NAMES = (
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
SOURCES = (
    ("direct", 32),
    ("search", 30),
    ("social", 10),
    ("email", 12),
    ("paid", 16),
)
REFERRERS = {
    "google": ("https://www.google.com/", "www.google.com", "search", "Google"),
    "facebook": ("https://l.facebook.com/", "l.facebook.com", "social", "Facebook"),
    "instagram": ("https://www.instagram.com/", "www.instagram.com", "social", "Instagram"),
    "gmail": ("https://mail.google.com/", "mail.google.com", "email", "Gmail"),
}


def cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _rows(name: str) -> list[dict[str, str]]:
    """A data file of this package as rows (files, or a zip: importlib.resources reads both)."""
    text = resources.files("loader.sources.synthetic").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


# (category, price low, price high, product nouns); nouns double as site-search vocabulary.
CATEGORIES: tuple[tuple[str, int, int, tuple[str, ...]], ...] = tuple(
    (r["category"], int(r["price_low"]), int(r["price_high"]), tuple(r["nouns"].split("|")))
    for r in _rows("categories.csv")
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)
_WORDS = _rows("product_words.csv")
ADJECTIVES = tuple(r["word"] for r in _WORDS if r["kind"] == "adjective")
COLORS = tuple(r["word"] for r in _WORDS if r["kind"] == "color")

# country, region, region name, city, zipcode, timezone, UTC offset (h, winter), lat, lon,
# language, weight
LOCATIONS: tuple[tuple[Any, ...], ...] = tuple(
    (r["country"], r["region"], r["region_name"], r["city"], r["zipcode"], r["timezone"],
     int(r["utc_offset_hours"]), float(r["latitude"]), float(r["longitude"]), r["language"],
     int(r["weight"]))
    for r in _rows("locations.csv")
)  # fmt: skip

# name, useragent, screens, weight. Viewports are derived from the screen per device.
PROFILES: tuple[tuple[str, str, tuple[tuple[int, int], ...], int], ...] = tuple(
    (r["name"], r["useragent"],
     tuple((int(w), int(h)) for w, h in (s.split("x") for s in r["screens"].split())),
     int(r["weight"]))
    for r in _rows("devices.csv")
)  # fmt: skip

# useragent, anonymised IP, geo (country, region, region name, city, timezone, lat, lon), weight
BOTS: tuple[tuple[str, str, tuple[Any, ...], int], ...] = tuple(
    (r["useragent"], r["ip"],
     (r["country"], r["region"], r["region_name"], r["city"], r["timezone"],
      float(r["latitude"]), float(r["longitude"])),
     int(r["weight"]))
    for r in _rows("bots.csv")
)  # fmt: skip

# ---------------------------------------------------------------- the shop's apps (apps.py)

MOBILE = "com.snowplowanalytics.mobile"
SCREEN_VIEW = ("unstruct", MOBILE, "screen_view", "jsonschema", "1-0-0")
SCREEN_END = ("unstruct", MOBILE, "screen_end", "jsonschema", "1-0-0")
APP_INSTALL = ("unstruct", MOBILE, "application_install", "jsonschema", "1-0-0")
APP_FOREGROUND = ("unstruct", SP, "application_foreground", "jsonschema", "1-0-0")
APP_BACKGROUND = ("unstruct", SP, "application_background", "jsonschema", "1-0-0")
SCREEN_VIEW_SCHEMA = f"iglu:{MOBILE}/screen_view/jsonschema/1-0-0"
SCREEN_END_SCHEMA = f"iglu:{MOBILE}/screen_end/jsonschema/1-0-0"
APP_INSTALL_SCHEMA = f"iglu:{MOBILE}/application_install/jsonschema/1-0-0"
APP_FOREGROUND_SCHEMA = f"iglu:{SP}/application_foreground/jsonschema/1-0-0"
APP_BACKGROUND_SCHEMA = f"iglu:{SP}/application_background/jsonschema/1-0-0"
SCREEN_SCHEMA = f"iglu:{MOBILE}/screen/jsonschema/1-0-0"
SCREEN_SUMMARY_SCHEMA = f"iglu:{MOBILE}/screen_summary/jsonschema/1-0-0"
APPLICATION_SCHEMA = f"iglu:{MOBILE}/application/jsonschema/1-0-0"
CLIENT_SESSION_SCHEMA = f"iglu:{SP}/client_session/jsonschema/1-0-2"
MOBILE_CONTEXT_SCHEMA = f"iglu:{SP}/mobile_context/jsonschema/1-0-3"
GEOLOCATION_SCHEMA = f"iglu:{SP}/geolocation_context/jsonschema/1-1-0"
APP_VERSIONS = (("4.2.0", "420"), ("4.2.0", "420"), ("4.1.3", "413"))
# share of the shop's web users who also install an app: likelier with an account
APP_USER_P = {True: 0.35, False: 0.08}
APP_ONLY_USERS = 0.05  # app-only users, per web user
APP_LOGIN_P = 0.6  # an app user with an account signs in on a session (and stays signed in)
BACKGROUND_P = 0.12  # a screen during which the app goes to the background and comes back
APP_BACKGROUND_TIMEOUT_MS = 30 * 60_000  # the trackers' default background session timeout

# os_type, os_version, manufacturer, model, (screen width, height), useragent, weight
APP_DEVICES: tuple[tuple[str, str, str, str, tuple[int, int], str, int], ...] = tuple(
    (r["os_type"], r["os_version"], r["manufacturer"], r["model"],
     (int(r["screen"].split("x")[0]), int(r["screen"].split("x")[1])), r["useragent"],
     int(r["weight"]))
    for r in _rows("app_devices.csv")
)  # fmt: skip

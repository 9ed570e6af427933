"""An app as the real Snowplow Python tracker sends it (ScreenView with client_session,
mobile_context, application and screen entities; screen engagement in screen_summary on
screen_end and background/foreground events), and the same customer on the web, through the
collector process and `dbt build`: found in views, sessions, users and the profile as one
customer on both platforms."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PagePing, PageView, ScreenView, SelfDescribing

from tests.loader.live_collector import Collector
from tests.models.conftest import Dbt

SP = "iglu:com.snowplowanalytics.snowplow"
MOBILE = "iglu:com.snowplowanalytics.mobile"
ECOM = "iglu:com.snowplowanalytics.snowplow.ecommerce"
EMAIL = "jane@example.com"
APP_UA = "PersonaShop/4.2.0 CFNetwork/1568.200.51 Darwin/24.1.0"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
BOOTS = {"id": "sku-boots", "name": "Trail boots", "category": "shoes", "price": 89.9,
         "currency": "EUR"}  # fmt: skip


def ms(at: datetime) -> float:
    return at.timestamp() * 1000


def test_an_app_and_the_web_make_one_customer(collector: Collector) -> None:
    install, session = str(uuid.uuid4()), str(uuid.uuid4())
    home, product = str(uuid.uuid4()), str(uuid.uuid4())
    start = datetime.now().astimezone() - timedelta(hours=2)
    emitter = Emitter("127.0.0.1", protocol="http", port=collector.port, method="post",
                      batch_size=20)  # fmt: skip
    # the apps' own HTTP client, as the mobile trackers send it (python-requests is a bot)
    app_user = Subject().set_platform("mob").set_useragent(APP_UA)
    app = Tracker("ios", emitter, subject=app_user, app_id="shop-ios")
    device = [
        SelfDescribingJson(f"{SP}/mobile_context/jsonschema/1-0-3",
                           {"osType": "ios", "osVersion": "18.1", "deviceManufacturer": "Apple",
                            "deviceModel": "iPhone15,4"}),
        SelfDescribingJson(f"{MOBILE}/application/jsonschema/1-0-0",
                           {"version": "4.2.0", "build": "420"}),
    ]  # fmt: skip
    index = iter(range(1, 100))

    def entities(screen: str, name: str, *extra: SelfDescribingJson) -> list[SelfDescribingJson]:
        client_session = {"userId": install, "sessionId": session, "sessionIndex": 1,
                          "previousSessionId": None, "storageMechanism": "SQLITE",
                          "eventIndex": next(index)}  # fmt: skip
        return [
            SelfDescribingJson(f"{SP}/client_session/jsonschema/1-0-2", client_session),
            SelfDescribingJson(f"{MOBILE}/screen/jsonschema/1-0-0", {"id": screen, "name": name}),
            *device,
            *extra,
        ]

    def summary(foreground: float, background: float) -> SelfDescribingJson:
        return SelfDescribingJson(
            f"{MOBILE}/screen_summary/jsonschema/1-0-0",
            {"foreground_sec": foreground, "background_sec": background},
        )

    def event(schema: str, data: dict, at: datetime, ctx: list[SelfDescribingJson]) -> None:
        app.track(SelfDescribing(SelfDescribingJson(schema, data), context=ctx,
                                 true_timestamp=ms(at)))  # fmt: skip

    # Home: 12 s, ten minutes in the background (shorter than the trackers' 30-minute background
    # timeout: the same session), 28 s more; then Product, where she signs in: 25 s.
    app.track(ScreenView(id_=home, name="Home", type="feed", context=entities(home, "Home"),
                         true_timestamp=ms(start)))  # fmt: skip
    at = start + timedelta(seconds=12)
    event(f"{SP}/application_background/jsonschema/1-0-0", {"backgroundIndex": 1}, at,
          entities(home, "Home", summary(12, 0)))  # fmt: skip
    at += timedelta(minutes=10)
    event(f"{SP}/application_foreground/jsonschema/1-0-0", {"foregroundIndex": 2}, at,
          entities(home, "Home", summary(12, 600)))  # fmt: skip
    at += timedelta(seconds=28)
    event(f"{MOBILE}/screen_end/jsonschema/1-0-0", {}, at,
          entities(home, "Home", summary(40, 600)))  # fmt: skip
    app_user.set_user_id(EMAIL)
    at += timedelta(seconds=1)
    app.track(ScreenView(id_=product, name="Product", type="detail", previous_name="Home",
                         previous_id=home, previous_type="feed", transition_type="push",
                         context=entities(product, "Product"), true_timestamp=ms(at)))  # fmt: skip
    event(f"{ECOM}/snowplow_ecommerce_action/jsonschema/1-0-2", {"type": "product_view"},
          at + timedelta(seconds=1),
          entities(product, "Product", SelfDescribingJson(f"{ECOM}/product/jsonschema/1-0-0",
                                                          BOOTS)))  # fmt: skip
    app_end = at + timedelta(seconds=25)
    event(f"{SP}/application_background/jsonschema/1-0-0", {"backgroundIndex": 2}, app_end,
          entities(product, "Product", summary(25.4, 0)))  # fmt: skip

    # The day before, on the web: a page view with two pings, signed in as the same customer.
    web_user = Subject().set_platform("web").set_user_id(EMAIL).set_useragent(BROWSER_UA)
    cookie, web_session, page = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    web_user.set_domain_user_id(cookie).set_domain_session_id(web_session)
    web = Tracker("js", emitter, subject=web_user, app_id="shop")
    web_page = [SelfDescribingJson(f"{SP}/web_page/jsonschema/1-0-0", {"id": page})]
    yesterday = start - timedelta(days=1)
    web.track(PageView(page_url="https://shop.example.com/", page_title="Shop",
                       context=web_page, true_timestamp=ms(yesterday)))  # fmt: skip
    for s in (10, 20):
        web.track(PagePing(page_url="https://shop.example.com/", context=web_page,
                           true_timestamp=ms(yesterday + timedelta(seconds=s))))  # fmt: skip
    emitter.flush()
    assert "loaded 10 events (0 failed)" in collector.stop()

    dbt = Dbt(collector.db)
    dbt("build", "--select", "+profiles", "+views", "--exclude-resource-type", "test",
        "unit_test", vars={"as_of": "latest_event"})  # fmt: skip
    con = dbt.connect()

    views = con.execute(
        "select view_id, view_type, platform_type, view_name, engaged_time_in_s, domain_sessionid "
        "from derived.views order by start_tstamp"
    ).fetchall()
    assert views == [
        # engagement counts ping intervals of device time, which the tracker stamps when it
        # tracks (true_timestamp moves derived_tstamp only): one interval, min_visit_length
        (page, "page_view", "web", "Shop", 5, web_session),
        (home, "screen_view", "mobile", "Home", 40, session),
        (product, "screen_view", "mobile", "Product", 25, session),
    ]
    screens = con.execute(
        "select screen_name, background_time_in_s, previous_screen_name, transition_type, "
        "absolute_time_in_s, os_type, device_model, app_version, domain_userid "
        "from derived.screen_views order by start_tstamp"
    ).fetchall()
    assert screens == [
        ("Home", 600, None, None, 640, "ios", "iPhone15,4", "4.2.0", install),
        ("Product", 0, "Home", "push", 25, "ios", "iPhone15,4", "4.2.0", install),
    ]
    sessions = con.execute(
        "select domain_sessionid, platform_type, domain_userid, stitched_user_id, page_views, "
        "screen_views, engaged_time_in_s, absolute_time_in_s, product_views, first_screen_name, "
        "last_screen_name, is_engaged from derived.sessions order by start_tstamp"
    ).fetchall()
    assert sessions == [
        (web_session, "web", cookie, EMAIL, 1, 0, 5, 20, 0, None, None, False),
        # one session across the ten-minute break: 12 + 28 + 1 + 25 s apart from it
        (session, "mobile", install, EMAIL, 0, 2, 65, 666, 1, "Home", "Product", True),
    ]
    user = con.execute(
        "select sessions, devices, page_views, screen_views, web_sessions, mobile_sessions, "
        "platforms from derived.users where user_id = ?",
        [EMAIL],
    ).fetchall()
    assert user == [(2, 2, 1, 2, 1, 1, "both")]
    profile = con.execute(
        "select platforms, sessions, web_sessions, mobile_sessions, screen_views, product_views, "
        "top_products, engaged_time_in_s from derived.profiles where user_id = ?",
        [EMAIL],
    ).fetchall()
    assert profile == [("both", 2, 1, 1, 2, 1, "sku-boots", 70)]
    assert con.execute("select count(*) from derived.users").fetchone() == (1,)

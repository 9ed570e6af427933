"""The official Snowplow Signals SDK against ``python -m serving``: it publishes attribute
groups and a service, the real Snowplow tracker sends events to the collector, and the SDK
reads attributes back that reflect them. Then the same with the online store in Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from snowplow_signals import (
    AtomicProperty,
    Attribute,
    Criteria,
    Criterion,
    EntityProperty,
    EventProperty,
    Service,
    SignalsAPIError,
    SignalsSandbox,
    StreamAttributeGroup,
    domain_sessionid,
    domain_userid,
)
from snowplow_signals.definitions import PageView
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView as TrackedPageView
from snowplow_tracker.events import SelfDescribing

from tests.serving.conftest import TOKEN, LiveServer

ECOM = "com.snowplowanalytics.snowplow.ecommerce"
ACTION = f"iglu:{ECOM}/snowplow_ecommerce_action/jsonschema/1-0-2"
PRODUCT = f"iglu:{ECOM}/product/jsonschema/1-0-0"
OWNER = "tester@example.com"


def groups() -> tuple[StreamAttributeGroup, StreamAttributeGroup, Service]:
    action_type = EventProperty(vendor=ECOM, name="snowplow_ecommerce_action", major_version=1,
                                path="$.type")  # fmt: skip
    product = dict(vendor=ECOM, name="product", major_version=1)
    views = StreamAttributeGroup(
        name="shopper", version=1, owner=OWNER, attribute_key=domain_userid,
        attributes=[
            Attribute(name="page_views", type="int32", aggregation="counter",
                      events=[PageView()]),
            Attribute(name="page_views_last_hour", type="int32", aggregation="counter",
                      events=[PageView()], period="PT1H"),
            Attribute(name="first_page", type="string", aggregation="first", events=[PageView()],
                      property=AtomicProperty(name="page_urlpath")),
            Attribute(name="last_page", type="string", aggregation="last", events=[PageView()],
                      property=AtomicProperty(name="page_urlpath")),
            Attribute(name="products_viewed", type="string_list", aggregation="unique_list",
                      events=[], property=EntityProperty(path="$.id", **product),
                      criteria=Criteria(all=[Criterion.eq(action_type, "product_view")])),
            Attribute(name="max_price", type="double", aggregation="max", events=[],
                      property=EntityProperty(path="$.price", **product),
                      criteria=Criteria(all=[Criterion.eq(action_type, "product_view")])),
            Attribute(name="mean_price", type="double", aggregation="mean", events=[],
                      property=EntityProperty(path="$.price", **product)),
            Attribute(name="cart_value", type="double", aggregation="sum", events=[],
                      property=EntityProperty(path="$.price", **product),
                      criteria=Criteria(all=[Criterion.eq(action_type, "add_to_cart")])),
            Attribute(name="cheapest", type="double", aggregation="min", events=[],
                      property=EntityProperty(path="$.price", **product)),
        ],
    )  # fmt: skip
    session = StreamAttributeGroup(
        name="visit", version=1, owner=OWNER, attribute_key=domain_sessionid,
        attributes=[Attribute(name="events", type="int64", aggregation="counter", events=[])],
    )  # fmt: skip
    service = Service(name="shop", owner=OWNER, attribute_groups=[views, session])
    return views, session, service


def track(collector_port: int, duid: str, sid: str, user_id: str | None = None) -> None:
    """Two page views, two product views and an add to cart, by the real Python tracker."""
    emitter = Emitter("127.0.0.1", protocol="http", port=collector_port, method="post",
                      batch_size=1)  # fmt: skip
    subject = Subject().set_domain_user_id(duid).set_domain_session_id(sid)
    if user_id:
        subject.set_user_id(user_id)
    tracker = Tracker("pytest", emitter, subject=subject, app_id="shop")
    tracker.track(TrackedPageView(page_url="https://shop.example.com/", page_title="Home"))
    tracker.track(TrackedPageView(page_url="https://shop.example.com/p/sku-1", page_title="1"))
    for sku, price, action in (("sku-1", 20.0, "product_view"), ("sku-2", 55.5, "product_view"),
                               ("sku-2", 55.5, "add_to_cart")):  # fmt: skip
        entity = SelfDescribingJson(PRODUCT, {"id": sku, "category": "shoes", "price": price,
                                              "currency": "EUR"})  # fmt: skip
        tracker.track(SelfDescribing(SelfDescribingJson(ACTION, {"type": action}),
                                     context=[entity]))  # fmt: skip
    tracker.flush()


def wait_for(read: Callable[[], dict[str, Any]], ok: Callable[[dict[str, Any]], bool],
             timeout: float = 20) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout
    got: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = read()
        if ok(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"attributes never matched: {got}")


EXPECTED = {
    "page_views": 2, "page_views_last_hour": 2, "first_page": "/", "last_page": "/p/sku-1",
    "products_viewed": ["sku-1", "sku-2"], "max_price": 55.5, "mean_price": (20 + 55.5 * 2) / 3,
    "cart_value": 55.5, "cheapest": 20.0,
}  # fmt: skip


def publish_and_read(server: LiveServer) -> None:
    sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
    views, session, service = groups()
    published = sdk.publish([views, session, service])
    assert [o.name for o in published] == ["shopper", "visit", "shop"]
    assert sdk.publish([views]) is not None  # again: the SDK's POST gets 400, then PUTs
    duid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    track(server.collector_port, duid, sid)
    got = wait_for(
        lambda: sdk.get_service_attributes(name="shop", attribute_key="domain_userid",
                                           identifier=duid),
        lambda g: g.get("cart_value") == 55.5,
    )  # fmt: skip
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert got["domain_userid"] == duid
    assert "events" not in got  # the session group: no domain_sessionid was asked for
    by_session = sdk.get_service_attributes(name="shop", attribute_key="domain_sessionid",
                                            identifier=sid)  # fmt: skip
    assert by_session["events"] == 5
    two = sdk.get_group_attributes(name="shopper", version=1,
                                   attributes=["page_views", "cart_value"],
                                   attribute_key="domain_userid", identifier=duid)  # fmt: skip
    assert two == {"domain_userid": duid, "page_views": 2, "cart_value": 55.5}
    nobody = sdk.get_group_attributes(name="shopper", version=1, attributes="page_views",
                                      attribute_key="domain_userid",
                                      identifier="nobody")  # fmt: skip
    assert nobody["page_views"] == 0
    assert sdk.get_attribute_group("shopper").full_name == "shopper_v1"
    with pytest.raises(SignalsAPIError) as missing:
        sdk.get_service_attributes(name="nope", attribute_key="domain_userid", identifier=duid)
    assert missing.value.status_code == 404 and "nope" in str(missing.value)


def test_the_sdk_publishes_and_reads_stream_attributes_the_tracker_made(live) -> None:
    server = live("--no-refresh")
    publish_and_read(server)
    # the YAML's groups serve too, and a restart rebuilds the attributes from the warehouse
    duid = str(uuid.uuid4())
    track(server.collector_port, duid, str(uuid.uuid4()))
    sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
    before = wait_for(
        lambda: sdk.get_service_attributes(name="shop", attribute_key="domain_userid",
                                           identifier=duid),
        lambda g: g.get("cart_value") == 55.5,
    )  # fmt: skip
    time.sleep(1)  # a committed batch (--batch-seconds 0.25)
    assert server.stop() == 0
    again = live("--no-refresh", tmp=server.tmp)
    after = SignalsSandbox(api_url=again.api, sandbox_token=TOKEN).get_service_attributes(
        name="shop", attribute_key="domain_userid", identifier=duid
    )
    assert after == before


def test_the_same_with_the_online_store_in_redis(live, redis_url: str) -> None:
    server = live("--no-refresh", "--online-store", redis_url)
    publish_and_read(server)
    import redis

    client = redis.Redis.from_url(redis_url)
    assert any(k.startswith(b"persona:s:shopper_v1:") for k in client.scan_iter(count=1000))
    client.close()


def test_bad_requests_get_their_status(live) -> None:
    server = live("--no-refresh")
    online = f"{server.api}/api/v1/get-online-attributes"
    ask = {"service": "personalization", "attribute_keys": {"domain_userid": ["a"]}}
    assert requests.post(online, json=ask, timeout=5).status_code == 401
    wrong = requests.post(online, json=ask, headers=server.headers("wrong"), timeout=5)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    ok = requests.post(online, json=ask, headers=server.headers(), timeout=5)
    assert ok.status_code == 200, ok.text
    bad = requests.post(online, data=b"{nope", headers=server.headers(), timeout=5)
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["detail"]
    many = {"service": "personalization",
            "attribute_keys": {"domain_userid": [str(i) for i in range(101)]}}  # fmt: skip
    too_many = requests.post(online, json=many, headers=server.headers(), timeout=5)
    assert too_many.status_code == 422 and "100" in too_many.json()["detail"]
    huge = requests.post(online, data=b"[" + b"1," * 600_000 + b"1]", headers=server.headers(),
                         timeout=5)  # fmt: skip
    assert huge.status_code == 413
    for body, named in (
        ({**ask, "service": "nope"}, "nope"),
        ({"attributes": ["nope_v1:x"], "attribute_keys": {"domain_userid": ["a"]}}, "nope_v1"),
        ({"attributes": ["session_activity_v1:nope"], "attribute_keys": {"domain_userid": ["a"]}},
         "nope"),
    ):  # fmt: skip
        missing = requests.post(online, json=body, headers=server.headers(), timeout=5)
        assert missing.status_code == 404 and named in missing.json()["detail"], missing.text
    decide = requests.post(f"{server.api}/v1/decide",
                           json={"domain_userid": "a", "fields": ["nope"]},
                           headers=server.headers(), timeout=5)  # fmt: skip
    assert decide.status_code == 404 and "nope" in decide.json()["detail"]
    schema = requests.get(f"{server.api}/openapi.json", timeout=5).json()
    assert "/v1/decide" in schema["paths"]
    # a definition that cannot compile: 422 with the reason, the running ones untouched
    bad_group = {"name": "broken", "version": 1, "attribute_key": {"name": "domain_userid"},
                 "owner": OWNER, "attributes": [{"name": "x", "type": "int32",
                 "aggregation": "most_frequent", "events": []}]}  # fmt: skip
    refused = requests.post(f"{server.api}/api/v1/registry/attribute_groups/", json=bad_group,
                            headers=server.headers(), timeout=5)  # fmt: skip
    assert refused.status_code == 422
    assert "broken_v1" in refused.json()["detail"] and "most_frequent" in refused.json()["detail"]
    assert requests.post(online, json=ask, headers=server.headers(), timeout=5).status_code == 200

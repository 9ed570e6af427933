"""Event logs and agentic context: the real Signals SDK publishes an event log and reads it back
(``get_agentic_context``, json and narrative) from the live process (``python -m serving`` on a
demo warehouse), while the real Snowplow tracker sends a demo user's session. The narrative's
facts are checked against SQL on the same warehouse, and it must hold no personal data."""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from snowplow_signals import (
    AgenticContextResponse,
    EventLog,
    EventLogAtomicProperty,
    EventLogEntityProperty,
    EventLogEvent,
    SignalsAPIError,
    SignalsSandbox,
    domain_sessionid,
)
from snowplow_signals.models.event_log import EventSelection
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView, SelfDescribing

from serving.context import Pseudonyms, narrative, tokens
from serving.stores import OnlineStore, open_store
from tests.serving.conftest import TOKEN, LiveServer, copy_warehouse
from tests.serving.test_decide import BROWSER
from tests.serving.test_signals_sdk import ACTION, ECOM, PRODUCT, wait_for

IP = "203.0.113.77"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@pytest.fixture(scope="module")
def world(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The live process over a copy of the demo warehouse (no refresh: its profiles stay as
    SQL reads them), and a demo user whose id is an e-mail address, with their facts."""
    tmp = tmp_path_factory.mktemp("context")
    warehouse = copy_warehouse(demo, tmp / "warehouse.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute(
            "select p.user_id, m.device_id, p.lifecycle_stage, p.rfm_segment, p.top_categories,"
            " p.purchases from derived.profiles p join derived.identity_map m using (user_id) "
            "where m.device_id_type = 'domain_userid' and p.user_id like '%@%' "
            "and p.purchases > 0 order by p.user_id limit 1"
        ).fetchall()[0]
        segments = [r[0] for r in con.execute(
            "select segment from derived.segment_membership where user_id = ? order by 1",
            [row[0]]).fetchall()]  # fmt: skip
    server = LiveServer(tmp, warehouse).start("--no-refresh", "--no-snapshot")
    facts = dict(zip(("user", "device", "lifecycle", "rfm", "categories", "purchases"), row,
                     strict=True))  # fmt: skip
    facts.update(segments=segments, nuid=str(uuid.uuid4()), server=server, tmp=tmp)
    yield facts
    if server.proc is not None and server.proc.poll() is None:
        server.stop(signal.SIGKILL)


def track_session(world: dict[str, Any], sid: str) -> None:
    """The demo user, back: a page with a query string carrying their e-mail, a product view
    and an add to cart, by the real Python tracker."""
    emitter = Emitter("127.0.0.1", protocol="http", port=world["server"].collector_port,
                      method="post", batch_size=1)  # fmt: skip
    subject = (Subject().set_domain_user_id(world["device"]).set_domain_session_id(sid)
               .set_user_id(world["user"]).set_network_user_id(world["nuid"])
               .set_ip_address(IP).set_useragent(BROWSER))  # fmt: skip
    tracker = Tracker("pytest", emitter, subject=subject, app_id="shop")
    tracker.track(PageView(page_url=f"https://shop.example.com/p/sku-0001?email={world['user']}"
                           "&token=s3cret#top", page_title="Knitwear"))  # fmt: skip
    for action in ("product_view", "add_to_cart"):
        entity = SelfDescribingJson(PRODUCT, {"id": "sku-0001", "category": "knitwear",
                                              "price": 49.5, "currency": "EUR"})  # fmt: skip
        tracker.track(SelfDescribing(SelfDescribingJson(ACTION, {"type": action}),
                                     context=[entity]))  # fmt: skip
    tracker.flush()


def shopper_log(prompt: str = "You are a helpful shop assistant.") -> EventLog:
    return EventLog(
        name="shopper_context", owner="tester@example.com", prompt=prompt,
        attribute_key=domain_sessionid, max_events=10, max_age_seconds=1800,
        events=[
            EventSelection(event=EventLogEvent(vendor="com.snowplowanalytics.snowplow",
                                               name="page_view", version="1-0-0"),
                           properties=[EventLogAtomicProperty(name="page_url"),
                                       EventLogAtomicProperty(name="page_title"),
                                       EventLogAtomicProperty(name="user_ipaddress"),
                                       EventLogAtomicProperty(name="domain_userid")]),
            EventSelection(event=EventLogEvent(vendor=ECOM, name="snowplow_ecommerce_action",
                                               major_version=1),
                           properties=[EventLogEntityProperty(vendor=ECOM, name="product",
                                                              major_version=1, path="$.id",
                                                              output_name="product_id")]),
        ],
    )  # fmt: skip


def assert_no_pii(text: str, world: dict[str, Any], sid: str) -> None:
    for raw in (world["user"], world["device"], world["nuid"], sid, IP, "s3cret"):
        assert raw not in text, raw
    assert "@" not in text and not UUID.search(text), text
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), text


def test_the_sdk_reads_a_demo_users_context_right_and_without_personal_data(world) -> None:
    server = world["server"]
    sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
    published = sdk.publish([shopper_log()])
    assert published[0].is_published
    assert sdk.get_event_log("shopper_context").is_published
    sid = str(uuid.uuid4())
    track_session(world, sid)

    context = wait_for(lambda: sdk.get_agentic_context("shopper_context", sid).model_dump(),
                       lambda c: len(c["events"]) == 3)  # fmt: skip
    got = AgenticContextResponse.model_validate(context)
    assert (got.name, got.identifier, got.attribute_key) == ("shopper_context", sid,
                                                             "domain_sessionid")  # fmt: skip
    assert got.prompt == "You are a helpful shop assistant."
    page, view, cart = got.events
    assert page["page_url"] == "https://shop.example.com/p/sku-0001"  # no query, no fragment
    assert page["user_ipaddress"] == "[withheld]"
    assert page["domain_userid"].startswith("device-") and page["page_title"] == "Knitwear"
    assert view["product_id"] == cart["product_id"] == "sku-0001"
    assert got.started_at_ms > 0 and page["collector_tstamp"].endswith("Z")
    assert "3 events" in got.summary and "1 page_view" in got.summary
    assert_no_pii(repr({k: v for k, v in context.items() if k != "identifier"}), world, sid)

    text = sdk.get_agentic_context("persona_context", sid, format="narrative")
    assert isinstance(text, str)
    assert_no_pii(text, world, sid)
    # the profile, as SQL reads it from the same warehouse
    assert f"lifecycle stage {world['lifecycle']}" in text
    assert f"RFM {world['rfm']} " in text
    assert f"top categories {world['categories'].replace(',', ', ')}" in text
    assert f"{world['purchases']} purchase{'s' if world['purchases'] != 1 else ''}," in text
    segments = ", ".join(world["segments"]) or "none"
    assert f"\nSegments: {segments}.\n" in text
    # the session, as the tracker sent it, oldest first
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert [line[11:] for line in lines] == [
        'viewed page /p/sku-0001 "Knitwear"',
        "viewed product sku-0001 (knitwear, 49.50 EUR)",
        "added to cart sku-0001 (knitwear, 49.50 EUR)",
    ]
    # recommendations: decide's, for the same visitor and session
    decision = requests.post(f"{server.api}/v1/decide", headers=server.headers(), timeout=5,
                             json={"domain_sessionid": sid, "domain_userid": world["device"],
                                   "k": 5}).json()  # fmt: skip
    items = ", ".join(i["product_id"] for i in decision["recommendations"]["items"])
    assert f"): {items}.\n" in text
    # the prompt of a published log leads its narrative; the same state, the same text
    mine = sdk.get_agentic_context("shopper_context", sid, format="narrative")
    assert "Instructions: You are a helpful shop assistant." in mine
    assert sdk.get_agentic_context("persona_context", sid, format="narrative") == text

    # a token budget: the oldest events go first, the profile summary stays
    budget = tokens(text) - 2
    url = f"{server.api}/api/v1/event_log"
    params = {"name": "persona_context", "identifier": sid, "format": "narrative"}
    short = requests.get(url, headers=server.headers(), timeout=5,
                         params={**params, "max_tokens": budget}).text  # fmt: skip
    assert tokens(short) <= budget
    assert "viewed page" not in short and "added to cart sku-0001" in short
    assert f"lifecycle stage {world['lifecycle']}" in short and "older left out" in short


def test_publish_validates_and_a_restart_rebuilds_the_logs(world) -> None:
    server = world["server"]
    sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
    sdk.publish([shopper_log()])
    sid = str(uuid.uuid4())
    track_session(world, sid)
    before = wait_for(lambda: sdk.get_agentic_context("shopper_context", sid).model_dump(),
                      lambda c: len(c["events"]) == 3)  # fmt: skip
    # rejected at publish, with the reason; the running log keeps its definition and rings
    base = f"{server.api}/api/v1/registry/event_logs"
    good = shopper_log().model_dump(mode="json", by_alias=True, exclude_none=True)
    for change, reason in (
        ({"attribute_key": {"name": "domain_userid"}}, "attribute_key must be domain_sessionid"),
        ({"max_events": 500}, "max_events must be an integer from 1 to 100"),
        ({"events": [{"event": {"name": "page_view"},
                      "properties": [{"type": "atomic", "name": "nope"}]}]}, "'nope'"),
    ):  # fmt: skip
        bad = requests.put(f"{base}/shopper_context", json={**good, **change},
                           headers=server.headers(), timeout=5)  # fmt: skip
        assert bad.status_code == 422 and reason in bad.json()["detail"], bad.text
        assert "shopper_context" in bad.json()["detail"]
    assert sdk.get_agentic_context("shopper_context", sid).model_dump() == before
    with pytest.raises(SignalsAPIError) as missing:
        sdk.get_agentic_context("nope", sid)
    assert missing.value.status_code == 404 and "nope" in str(missing.value)
    assert requests.get(f"{server.api}/api/v1/event_log", params={"name": "shopper_context",
                        "identifier": sid}, timeout=5).status_code == 401  # fmt: skip

    # derived data: a restart rebuilds the rings from atomic.events
    assert server.stop() == 0
    world["server"] = server = LiveServer(world["tmp"], server.warehouse).start(
        "--no-refresh", "--no-snapshot")  # fmt: skip
    sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
    assert sdk.get_agentic_context("shopper_context", sid).model_dump() == before
    sdk.unpublish([shopper_log()])
    with pytest.raises(SignalsAPIError) as stopped:
        sdk.get_agentic_context("shopper_context", sid)
    assert stopped.value.status_code == 404 and "not published" in str(stopped.value)
    sdk.delete([shopper_log()])
    with pytest.raises(SignalsAPIError) as deleted:
        sdk.get_event_log("shopper_context")
    assert deleted.value.status_code == 404


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    uri = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    s = open_store(uri)
    yield s
    s.close()


def test_a_ring_keeps_its_last_values_and_expires(store: OnlineStore) -> None:
    import time

    store.push_lists({"r": [b"1", b"2"], "q": []}, max_len=3, ttl_seconds=60)
    store.push_lists({"r": [b"3", b"4"]}, max_len=3, ttl_seconds=0.2)
    assert store.get_list("r") == [b"2", b"3", b"4"] and store.get_list("q") == []
    time.sleep(0.3)
    assert store.get_list("r") == []


TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30)
ENTRY = st.fixed_dictionaries({
    "t": st.integers(1_700_000_000_000, 1_800_000_000_000),
    "e": st.sampled_from(["page_view", "site_search", "custom"]),
    "p": st.fixed_dictionaries({"page_urlpath": TEXT, "terms": st.lists(TEXT, max_size=3)}),
})  # fmt: skip
FACTS = {"session": "sid-1", "user": "someone@example.com", "device": "dev-1", "decision": {
    "profile": {"known": True, "fields": {"lifecycle_stage": "active", "rfm_segment": "Loyal"}},
    "segments": {"segments": ["b", "a"]}, "recommendations": {"items": []}}}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(ENTRY, max_size=30), st.integers(1, 400))
def test_the_budget_drops_the_oldest_events_and_keeps_the_profile(entries, budget) -> None:
    entries = sorted(entries, key=lambda e: e["t"])
    pseudonym = Pseudonyms("salt")
    full = narrative(FACTS, entries, pseudonym)
    text = narrative(FACTS, entries, pseudonym, max_tokens=budget)
    assert text == narrative(FACTS, entries, pseudonym, max_tokens=budget)  # deterministic
    assert "lifecycle stage active; RFM Loyal" in text and "Segments: a, b." in text
    assert "someone@example.com" not in text and "dev-1" not in text and "sid-1" not in text
    kept = [line for line in text.splitlines() if line.startswith("- ")]
    every = [line for line in full.splitlines() if line.startswith("- ")]
    assert kept == every[len(every) - len(kept) :]  # the newest, in order
    assert tokens(text) <= budget or not kept  # over budget only when no event is left


def test_a_log_keeps_the_last_events_within_its_age_each_once() -> None:
    """The bounds of a log, in process: max_events, max_age_seconds, and the loader's
    at-least-once delivery (a replayed event is told once)."""
    import time
    from datetime import UTC, datetime

    from serving.event_logs import EventLogs

    store = open_store("memory")
    logs = EventLogs(store)
    spec = shopper_log().model_dump(mode="json", by_alias=True, exclude_none=True)
    logs.put({**spec, "max_events": 3, "max_age_seconds": 600}, create=True)
    logs.publish(["shopper_context"])
    now = time.time()

    def page(i: int, age: float) -> dict[str, Any]:
        return {"event_id": f"e{i}", "event_name": "page_view", "event_version": "1-0-0",
                "event_vendor": "com.snowplowanalytics.snowplow", "domain_sessionid": "s1",
                "collector_tstamp": datetime.fromtimestamp(now - age, UTC),
                "page_url": f"https://x.example/{i}"}  # fmt: skip

    logs.observe([page(0, 900), page(1, 50), page(2, 40)])
    logs.observe([page(2, 40), page(1, 50)])  # the spool's replay
    ring = logs.get("shopper_context").ring_key("s1")
    assert len(store.get_list(ring)) == 2  # the replay took no place in the ring
    _, entries = logs.recent("shopper_context", "s1")
    assert [e["id"] for e in entries] == ["e1", "e2"]  # e0 is older than max_age_seconds
    logs.observe([page(3, 30), page(4, 20), page(5, 10)])
    _, entries = logs.recent("shopper_context", "s1")
    assert [e["id"] for e in entries] == ["e3", "e4", "e5"]  # the last max_events

"""``/v1/decide`` on a warehouse built as ``make demo`` builds one (smaller, the ``demo``
fixture): served at once, then refreshed by the live process's own dbt loop while the real
tracker sends events."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import duckdb
import requests
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView, SelfDescribing

from tests.serving.test_signals_sdk import ACTION, PRODUCT

WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
# not a bot: the models leave bots (python-requests, the tracker's default) out of profiles
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)


def decide(server, **body) -> dict:
    got = requests.post(f"{server.api}/v1/decide", json=body, headers=server.headers(), timeout=5)
    assert got.status_code == 200, got.text
    return got.json()


def test_decide_serves_a_built_warehouse_then_follows_the_live_stream(
    live, demo: Path, tmp_path: Path
) -> None:
    with duckdb.connect(str(demo)) as con:  # dbt, in this process, has it open
        con.execute("checkpoint")  # then the file alone holds everything: it is copied below
        user, device = con.execute(
            "select m.user_id, m.device_id from derived.identity_map m "
            "join derived.segment_membership s using (user_id) "
            "join derived.current_user_recommendations r using (user_id) "
            "where m.device_id_type = 'domain_userid' order by 1 limit 1"
        ).fetchone()
        segments = [r[0] for r in con.execute(
            "select segment from derived.segment_membership where user_id = ? order by 1", [user]
        ).fetchall()]  # fmt: skip
        version = con.execute("select max(rule_set_version) from derived.rule_set_versions")
        version = version.fetchone()[0]
        item, neighbour = con.execute(
            "select product_id, similar_product_id from derived.current_item_similarity "
            "order by similarity desc, product_id limit 1"
        ).fetchone()
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(demo.read_bytes())
    server = live("--refresh-seconds", "1", warehouse=warehouse)

    known = decide(server, domain_userid=device, fields=["lifecycle_stage", "purchases"])
    assert known["user_id"] == user
    assert known["profile"]["known"] and set(known["profile"]["fields"]) == {
        "lifecycle_stage", "purchases"}  # fmt: skip
    assert known["profile"]["as_of"] is not None
    assert known["segments"]["segments"] == segments and known["segments"]["as_of"]
    recs = known["recommendations"]
    assert recs["rule_set_version"] == version and len(recs["items"]) == 10
    assert recs["precomputed"]

    stranger = decide(server, domain_userid=str(uuid.uuid4()))
    assert stranger["profile"]["known"] is False and stranger["segments"]["segments"] == []
    assert stranger["recommendations"]["strategy"].startswith("popular:")
    assert len(stranger["recommendations"]["items"]) == 10

    # a new visitor views a product: their next decision is scored with it, live
    duid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    emitter = Emitter("127.0.0.1", protocol="http", port=server.collector_port, method="post",
                      batch_size=1)  # fmt: skip
    tracker = Tracker("pytest", emitter, app_id="persona-shop",
                      subject=Subject().set_domain_user_id(duid).set_domain_session_id(sid)
                      .set_useragent(BROWSER))  # fmt: skip
    # a page view id (the web_page entity, as the browser tracker sends): sessions need one
    page = SelfDescribingJson(WEB_PAGE, {"id": str(uuid.uuid4())})
    tracker.track(PageView(page_url=f"https://shop.persona.dev/p/{item}", page_title=item,
                           context=[page]))  # fmt: skip
    product = SelfDescribingJson(PRODUCT, {"id": item, "category": "x", "price": 10.0,
                                           "currency": "EUR"})  # fmt: skip
    tracker.track(SelfDescribing(SelfDescribingJson(ACTION, {"type": "product_view"}),
                                 context=[product, page]))  # fmt: skip
    tracker.flush()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        fresh = decide(server, domain_userid=duid)
        if fresh["session"]["items"]:
            break
        time.sleep(0.05)
    assert fresh["domain_sessionid"] == sid and fresh["session"]["items"] == [item]
    assert fresh["recommendations"]["strategy"] == "live"
    ranked = [r["product_id"] for r in fresh["recommendations"]["items"]]
    assert item not in ranked and neighbour in ranked

    # the refresh loop (dbt in this process) builds their profile; the sync serves it
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        later = decide(server, domain_userid=duid, fields=["product_views"])
        if later["profile"]["known"]:
            break
        time.sleep(0.5)
    assert later["profile"]["fields"] == {"product_views": 1}, later
    # the sync serves the rows a moment before the refresh counts itself done
    deadline = time.monotonic() + 10
    while (health := requests.get(f"{server.api}/health", timeout=5).json())["refreshes"] < 1:
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    assert health["refresh_failures"] == 0, health
    # after a refresh, the process's account of its memory (serving/memory.py): the stream
    # keys include this visitor's, DuckDB's share is part of the process's RSS
    while "rss_mb" not in (memory := requests.get(f"{server.api}/health", timeout=5).json()
                           ["memory"]):  # fmt: skip
        assert time.monotonic() < deadline, memory
        time.sleep(0.05)
    assert memory["stream_keys"] >= 1 and 0 < memory["duckdb_mb"] < memory["rss_mb"], memory
    assert memory["gc"]["gen0"]["count"] >= 1, memory  # the collector's account
    assert memory["trimmed"] in (True, False), memory
    assert server.stop() == 0

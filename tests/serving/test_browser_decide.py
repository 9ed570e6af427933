"""A web page personalizes itself: the real Snowplow browser tracker in Debian's headless
Chromium views a product, then the page asks ``/v1/decide`` with no token, its credential the
collector's ``sp`` cookie (the API and the collector share the host 127.0.0.1; cookies ignore
ports), and the recommendations hold the viewed product's neighbour. The same browser is refused
another device or user; so is a cookie that did not bring the device's first event, even one
that later sent events naming the device; the token still reads anyone.

The page (``tests/browser/decide.html``) is served from a third port: CORS lets that origin
read the answers (``--browser-origin``), and no other."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import pytest
import requests

from tests.chromium import BROWSER_DIR, PageServer, find_chromium, run_chromium
from tests.serving.conftest import TOKEN, copy_warehouse

DECIDE_PAGE = BROWSER_DIR / "decide.html"


@pytest.fixture
def chromium() -> str:
    return find_chromium()  # first: a skip comes before any process starts


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer(DECIDE_PAGE)
    yield server
    server.close()


def post(url: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(url, json=body, timeout=5, **kwargs)


def test_a_page_personalizes_itself_and_reads_only_its_own_device(
    chromium: str, page_server: PageServer, live, demo: Path, tmp_path: Path
) -> None:
    with duckdb.connect(str(demo)) as con:
        item, neighbour = con.execute(
            "select product_id, similar_product_id from derived.current_item_similarity "
            "order by similarity desc, product_id limit 1"
        ).fetchall()[0]
        other_user, other_device = con.execute(
            "select user_id, device_id from derived.identity_map "
            "where device_id_type = 'domain_userid' and user_id is not null order by 1 limit 1"
        ).fetchall()[0]
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    page_origin = f"http://127.0.0.1:{page_server.port}"
    server = live("--no-refresh", "--browser-origin", page_origin, warehouse=warehouse)
    decide = f"{server.api}/v1/decide"

    query = urlencode({"collector": server.collector, "api": server.api, "item": item,
                       "other": other_device, "other_user": other_user})  # fmt: skip
    log = run_chromium(chromium, f"{page_origin}/?{query}", tmp_path / "profile", page_server,
                       timeout=40)  # fmt: skip
    report = page_server.report
    assert report is not None, f"the page never reported back; Chromium said:\n{log[-4000:]}"
    assert report["errors"] == [] and report["failures"] == [], report
    assert len(report["acknowledged"]) == 2, report

    # the page's own decision, with no token: scored live with the product it just viewed
    mine = report["mine"]
    assert mine["status"] == 200, report
    decision = mine["body"]
    assert decision["session"]["items"] == [item]
    assert decision["recommendations"]["strategy"] == "live"
    ranked = [r["product_id"] for r in decision["recommendations"]["items"]]
    assert neighbour in ranked and item not in ranked, decision
    assert neighbour in report["shown"]  # the page showed them
    # another device, another user: refused (and readable as refused: CORS answers them too)
    assert report["otherDevice"]["status"] == 403, report
    assert report["otherUser"]["status"] == 403, report

    device = report["device"]
    cookies = dict(c.split("=", 1) for c in report["cookie"].split("; ") if "=" in c)
    nuid = cookies["sp"]  # the collector's cookie, which the browser sent to the API too
    mine_again = {"domain_userid": device}
    origin = {"Origin": page_origin}
    # the cookie is the credential: with it, the device; without it, nothing
    assert post(decide, mine_again, cookies={"sp": nuid}, headers=origin).status_code == 200
    assert post(decide, mine_again).status_code == 401
    forged = {"sp": str(uuid.uuid4())}
    assert post(decide, mine_again, cookies=forged, headers=origin).status_code == 403
    assert post(decide, {"domain_userid": other_device}, cookies={"sp": nuid}).status_code == 403
    # no other endpoint takes the cookie: full reads need the token
    online = f"{server.api}/api/v1/get-online-attributes"
    attrs = {"service": "x", "attribute_keys": {"domain_userid": [device]}}
    assert post(online, attrs, cookies={"sp": nuid}).status_code == 401
    # the token reads any device
    token = {"Authorization": f"Bearer {TOKEN}"}
    assert post(decide, {"domain_userid": other_device}, headers=token).status_code == 200

    # CORS: the page's origin, with credentials; another origin is refused, before and after
    preflight = requests.options(decide, headers={**origin, "Access-Control-Request-Method":
                                                  "POST"}, timeout=5)  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == page_origin
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    evil = {"Origin": "http://evil.example"}
    assert requests.options(decide, headers=evil, timeout=5).status_code == 403
    got = post(decide, mine_again, cookies={"sp": nuid}, headers=evil)
    assert got.status_code == 403 and "Access-Control-Allow-Origin" not in got.headers

    # someone who knows the device id sends events naming it, with a cookie of their own: the
    # device still belongs to the cookie its first event came with
    spoofer = requests.Session()
    session_id = str(uuid.uuid4())
    now = str(int(time.time() * 1000))
    sent = spoofer.post(
        f"{server.collector}/com.snowplowanalytics.snowplow/tp2", timeout=5,
        json={"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
              "data": [{"e": "pv", "eid": str(uuid.uuid4()), "p": "web", "tv": "js-4.0.0",
                        "duid": device, "sid": session_id, "vid": "1", "dtm": now,
                        "stm": now, "url": "https://evil.example/"}]},
    )  # fmt: skip
    assert sent.status_code == 200 and spoofer.cookies.get("sp") not in (None, nuid)
    deadline = time.monotonic() + 10  # the live process has seen it: the device's last session
    while post(decide, mine_again, headers=token).json()["domain_sessionid"] != session_id:
        assert time.monotonic() < deadline, "the spoofed event never arrived"
        time.sleep(0.05)
    assert post(decide, mine_again, cookies=spoofer.cookies).status_code == 403
    assert post(decide, mine_again, cookies={"sp": nuid}).status_code == 200
    assert server.stop() == 0

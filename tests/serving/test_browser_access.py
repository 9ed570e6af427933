"""Who may call ``/v1/decide`` from a browser (no token, the collector's ``sp`` cookie), in
process: the HTTP layer over a real ``Api``, stream engine and in-memory store, fed events as
the loader hands them over. The end-to-end version, in headless Chromium with the real
tracker, is test_browser_decide.py; this one runs where Chromium is missing too."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
import uvicorn

from serving.http import build_app
from serving.service import ANONYMOUS_NUID, Api, new_registry
from serving.stores import open_store
from serving.stream import StreamEngine
from tests.loader.live_collector import free_port

TOKEN = "t" * 32
PAGE = "https://shop.example"


def event(device: str, session: str, nuid: str | None, at: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "collector_tstamp": at, "event_vendor":
            "com.snowplowanalytics.snowplow", "event_name": "page_view", "event_version":
            "1-0-0", "domain_userid": device, "domain_sessionid": session,
            "network_userid": nuid}  # fmt: skip


class Client:
    """requests against one base URL, as a page on ``PAGE`` would call (sans browser)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def post(self, path: str, **kwargs):
        return requests.post(self.base + path, timeout=5, **kwargs)

    def options(self, path: str, **kwargs):
        return requests.options(self.base + path, timeout=5, **kwargs)


@pytest.fixture
def setup():
    """The API on a real server (uvicorn, a thread of this process) over an in-memory store."""
    store = open_store("memory")
    registry = new_registry()
    engine = StreamEngine(store)
    engine.set_groups(registry.stream_groups())
    app = build_app(Api(registry, store, engine), TOKEN, browser_origins=[PAGE])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.01)
    yield Client(f"http://127.0.0.1:{port}"), engine
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


def test_a_device_belongs_to_the_cookie_of_its_first_event(setup) -> None:
    client, engine = setup
    mine, anon, nuid, other_nuid = (str(uuid.uuid4()) for _ in range(4))
    t = datetime(2026, 1, 1, tzinfo=UTC)
    engine.observe([
        event(anon, "s0", ANONYMOUS_NUID, t),  # SP-Anonymous: belongs to no one
        event(mine, "s1", nuid, t + timedelta(seconds=1)),
        event(mine, "s2", other_nuid, t + timedelta(seconds=2)),  # someone naming the device
    ])  # fmt: skip

    def ask(body: dict, sp: str | None = None, **headers: str) -> int:
        cookies = {"sp": sp} if sp else None
        got = client.post("/v1/decide", json=body, cookies=cookies,
                          headers={"Origin": PAGE, **headers})  # fmt: skip
        return got.status_code

    assert ask({"domain_userid": mine}, nuid) == 200
    assert ask({"domain_userid": mine, "domain_sessionid": "s2"}, nuid) == 200  # the latest
    assert ask({"domain_userid": mine}, other_nuid) == 403  # came second
    assert ask({"domain_userid": mine}) == 401  # no cookie
    assert ask({"domain_userid": anon}, ANONYMOUS_NUID) == 403
    assert ask({"domain_userid": str(uuid.uuid4())}, nuid) == 403  # a device never seen
    assert ask({"domain_sessionid": "s1"}, nuid) == 403  # names no device
    assert ask({"domain_userid": mine, "domain_sessionid": "s1"}, nuid) == 403  # not the latest
    assert ask({"domain_userid": mine, "user_id": "someone"}, nuid) == 403
    assert ask({"domain_userid": mine, "user_id": mine}, nuid) == 200  # its own user (itself)
    # a wrong token is not rescued by a good cookie; the token reads anyone
    assert ask({"domain_userid": mine}, nuid, Authorization="Bearer nope") == 401
    assert ask({"domain_userid": anon}, Authorization=f"Bearer {TOKEN}") == 200
    # only /v1/decide takes the cookie
    attributes = {"service": "x", "attribute_keys": {"domain_userid": [mine]}}
    got = client.post("/api/v1/get-online-attributes", cookies={"sp": nuid}, json=attributes)
    assert got.status_code == 401


def test_cors_answers_the_listed_origins_only(setup) -> None:
    client, _ = setup
    preflight = client.options("/v1/decide", headers={"Origin": PAGE})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == PAGE
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "Content-Type" in preflight.headers["access-control-allow-headers"]
    refused = client.post("/v1/decide", json={}, headers={"Origin": PAGE})
    assert refused.status_code == 401  # errors carry CORS too: the page can read why
    assert refused.headers["access-control-allow-origin"] == PAGE
    for call in (client.options, lambda url, **kw: client.post(url, json={}, **kw)):
        evil = call("/v1/decide", headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    # a page on the API's own origin needs no listing
    own = client.post("/v1/decide", json={}, headers={"Origin": client.base})
    assert own.status_code == 401

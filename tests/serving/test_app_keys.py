"""Stream attributes keyed by session or device count an app's events under its client_session
ids (the mobile trackers set no domain_sessionid), as the models key its sessions."""

from __future__ import annotations

from datetime import datetime

import orjson

from serving.definitions import CLIENT_SESSION, compile_group
from serving.stores.memory import MemoryStore
from serving.stream import StreamEngine, columns


def test_app_events_are_keyed_by_their_client_session() -> None:
    groups = {
        key: compile_group({"name": f"by_{key}", "version": 1, "attribute_key": {"name": key},
                            "attributes": [{"name": "events", "type": "int32",
                                            "aggregation": "counter", "events": []}]})
        for key in ("domain_sessionid", "domain_userid")
    }  # fmt: skip
    engine = StreamEngine(MemoryStore())
    for group in groups.values():
        engine.add_group(group, lambda _group: [])
    app = {"userId": "install-1", "sessionId": "app-session-1"}
    at = datetime(2026, 1, 1, 12)
    engine.observe([
        # as the loader hands them over, and as a rebuild reads them back (a JSON column)
        {"event_id": "e1", "collector_tstamp": at, "domain_sessionid": None,
         CLIENT_SESSION: [app]},
        {"event_id": "e2", "collector_tstamp": at, CLIENT_SESSION: orjson.dumps([app]).decode()},
        {"event_id": "e3", "collector_tstamp": at, "domain_sessionid": "web-session",
         "domain_userid": "cookie"},
    ])  # fmt: skip
    counts = {key: state["a"]["events"][0][1] for key, state in engine.state.items()}
    assert counts == {
        (groups["domain_sessionid"].full_name, "app-session-1"): 2,
        (groups["domain_sessionid"].full_name, "web-session"): 1,
        (groups["domain_userid"].full_name, "install-1"): 2,
        (groups["domain_userid"].full_name, "cookie"): 1,
    }
    assert CLIENT_SESSION in columns(groups.values())

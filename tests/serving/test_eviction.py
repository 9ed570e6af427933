"""Stream attributes keep memory bounded: a key idle for longer than its group's window is
forgotten, in the engine and in the online store, exactly the keys a restart would not
rebuild."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from serving.definitions import compile_group
from serving.stores.memory import MemoryStore
from serving.stream import StreamEngine, group_values, stream_key, window

NOW = 1_800_000_000.0
HOUR = 3600.0


def groups():
    counter = {"name": "views", "type": "int64", "aggregation": "counter", "events": []}
    per_hour = compile_group({"name": "hourly", "version": 1, "attribute_key": {
        "name": "domain_userid"}, "attributes": [{**counter, "period": "PT1H"}]})  # fmt: skip
    sessions = compile_group({"name": "session", "version": 1, "ttl": "PT1H", "attribute_key": {
        "name": "domain_sessionid"}, "attributes": [counter]})  # fmt: skip
    lifetime = compile_group({"name": "ever", "version": 1, "attribute_key": {
        "name": "domain_userid"}, "attributes": [counter]})  # fmt: skip
    return [per_hour, sessions, lifetime]


def event(device: str, session: str, ts: float) -> dict:
    return {"event_id": str(uuid.uuid4()), "collector_tstamp": ts, "event_name": "page_view",
            "domain_userid": device, "domain_sessionid": session}  # fmt: skip


def engine(lifetime: float = 6 * HOUR) -> tuple[StreamEngine, MemoryStore]:
    store = MemoryStore()
    eng = StreamEngine(store, lifetime)
    eng.set_groups(groups())
    return eng, store


def test_idle_keys_leave_the_engine_and_the_store() -> None:
    eng, store = engine()
    eng.observe([event("old", "s-old", NOW - 3 * HOUR), event("new", "s-new", NOW - 600)])
    hourly, sessions, ever = groups()
    assert store.get(stream_key(sessions, "s-old")) is not None

    assert eng.evict(NOW) == 2  # s-old's session and old's hourly counter; old's lifetime: kept
    for group, key in ((hourly, "old"), (sessions, "s-old")):
        assert (group.full_name, key) not in eng.state
        assert store.get(stream_key(group, key)) is None
        assert group_values(group, None, NOW)["views"] == 0  # reads as never seen
    assert store.get(stream_key(ever, "old")) is not None  # its window is 6 h
    for group, key in ((hourly, "new"), (sessions, "s-new"), (ever, "new")):
        assert store.get(stream_key(group, key)) is not None
    assert eng.evict(NOW + 7 * HOUR) == 4  # everything, in the end


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9), st.floats(0, 12 * HOUR)),
                max_size=40))  # fmt: skip
def test_after_eviction_the_keys_are_those_a_restart_rebuilds(visits) -> None:
    events = [event(f"d{d}", f"s{d}-{s}", NOW - age) for d, s, age in visits]
    live, _ = engine()
    live.observe(events)
    live.evict(NOW)

    restarted, _ = engine()
    for group in restarted.groups.values():  # each group from its own window, as Live does
        recent = [e for e in events if NOW - e["collector_tstamp"] <= window(group, 6 * HOUR)]
        restarted.observe(sorted(recent, key=lambda e: e["collector_tstamp"]), pending=False)
    kept = {k for k in live.state}
    rebuilt = {
        k
        for k in restarted.state
        if NOW - restarted.state[k]["t"] <= window(restarted.groups[k[0]], 6 * HOUR)
    }
    assert kept == rebuilt

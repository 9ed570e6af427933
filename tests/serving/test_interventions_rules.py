"""Rules in process (a real stream engine, in-process store and DuckDB file, no server):
validation names the offending part; fire once per target (a property); cooldown; batch
attributes and segment entries as triggers; list semantics of the operators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.batch import batch_key
from serving.errors import DefinitionError
from serving.interventions import InterventionSettings, attach
from serving.interventions.rules import Leaf, compile_rule, holds
from serving.service import new_registry
from serving.stores.memory import MemoryStore
from serving.stream import StreamEngine

VIEWS = {"name": "views", "version": 1, "owner": "t@example.com", "is_published": True,
         "attribute_key": {"name": "domain_userid"},
         "attributes": [{"name": "n", "type": "int64", "aggregation": "counter",
                         "events": [{"vendor": "com.snowplowanalytics.snowplow",
                                     "name": "page_view", "version": "1-0-0"}]},
                        {"name": "paths", "type": "string_list", "aggregation": "unique_list",
                         "events": [], "property": {"type": "atomic",
                                                    "name": "page_urlpath"}}]}  # fmt: skip


def world(tmp: Path, *rules: dict[str, Any]) -> SimpleNamespace:
    registry = new_registry()
    registry.put_group(VIEWS, persist=False)
    store = MemoryStore()
    engine = StreamEngine(store)
    engine.set_groups(registry.stream_groups())
    con = duckdb.connect(str(tmp / f"{uuid.uuid4()}.duckdb"))
    sync = SimpleNamespace(listeners=[])
    it = attach(InterventionSettings(rules=None), tmp / "state", registry, engine, store, con,
                sync)  # fmt: skip
    for spec in rules:
        it.rules.put({"owner": "t@example.com", "version": 1, **spec}, persist=False)
    return SimpleNamespace(engine=engine, store=store, con=con, it=it, sync=sync)


def view(device: str, path: str = "/") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "collector_tstamp": datetime.now(UTC),
            "event_vendor": "com.snowplowanalytics.snowplow", "event_name": "page_view",
            "event_version": "1-0-0", "domain_userid": device, "domain_sessionid": f"s-{device}",
            "page_urlpath": path}  # fmt: skip


def fired(w: SimpleNamespace) -> list[tuple[str, str, str]]:
    return w.con.execute("select name, target_key, target_id from interventions.fired "
                         "order by seq").fetchall()  # fmt: skip


@pytest.mark.parametrize("spec, named", [
    ({"criteria": {"attribute": "views:nope", "operator": "=", "value": 1}}, "'nope'"),
    ({"criteria": {"attribute": "ghost:n", "operator": "=", "value": 1}}, "'ghost'"),
    ({"criteria": {"attribute": "views_v9:n", "operator": "=", "value": 1}}, "'views_v9'"),
    ({"criteria": {"attribute": "views", "operator": "=", "value": 1}}, "GROUP:ATTRIBUTE"),
    ({"criteria": {"all": [{"attribute": "views:n", "operator": "~", "value": 1}]}},
     "criteria.all[0]: operator '~'"),
    ({"criteria": {"any": [{"attribute": "views:n", "operator": "in", "value": 3}]}},
     "criteria.any[0]: 'in' needs a non-empty list"),
    ({"criteria": {"attribute": "views:n", "operator": "is null", "value": 3}}, "takes no value"),
    ({"criteria": {"attribute": "views:n", "operator": "rlike", "value": "("}},
     "not a regular expression"),
    ({"criteria": {"all": []}}, "non-empty list"),
    ({"criteria": {"all": [], "any": []}}, "exactly one of all, any, none"),
    ({"criteria": {"attribute": "views:n", "operator": ">", "value": 1},
      "target_attribute_keys": [{"name": "email"}]}, "'email'"),
    ({"criteria": {"attribute": "views:n", "operator": ">", "value": 1},
      "payload_attribute_groups": [{"name": "nope", "version": 1}]}, "nope_v1"),
    ({"criteria": {"attribute": "segment_changes:left", "operator": "=", "value": "x"}},
     "entered, exited"),
])  # fmt: skip
def test_a_bad_rule_is_refused_naming_the_part(tmp_path: Path, spec: dict, named: str) -> None:
    w = world(tmp_path, {"name": "good", "criteria": {"attribute": "views:n", "operator": ">=",
                                                      "value": 1}})  # fmt: skip
    with pytest.raises(DefinitionError) as refused:
        w.it.rules.put({"name": "bad", "version": 1, **spec})
    assert named in str(refused.value) and "bad_v1" in str(refused.value)
    assert list(w.it.rules.rules) == [("good", 1)]  # the running rule untouched
    w.engine.observe([view("d1")])
    assert fired(w) == [("good", "domain_userid", "d1")]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(1, 3)), max_size=30),
       st.integers(1, 4))  # fmt: skip
def test_a_rule_fires_once_per_target_when_its_criteria_first_hold(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[tuple[str, int]], threshold: int
) -> None:
    w = world(tmp_path_factory.mktemp("p"), {"name": "r", "criteria": {
        "attribute": "views:n", "operator": ">=", "value": threshold}})  # fmt: skip
    counts: dict[str, int] = {}
    for device, n in chunks:  # n views of one device in one chunk
        w.engine.observe([view(device) for _ in range(n)])
        counts[device] = counts.get(device, 0) + n
    expected = sorted(d for d, c in counts.items() if c >= threshold)
    assert sorted(t for _, _, t in fired(w)) == expected


def test_cooldown_lets_a_rule_fire_again(tmp_path: Path) -> None:
    w = world(
        tmp_path,
        {
            "name": "r",
            "cooldown": 3600,
            "criteria": {"attribute": "views:n", "operator": ">=", "value": 1},
        },
    )
    w.engine.observe([view("d1")])
    w.engine.observe([view("d1")])
    assert len(fired(w)) == 1
    w.it.fired = {k: v - 3601 for k, v in w.it.fired.items()}  # an hour later
    w.engine.observe([view("d1")])
    assert len(fired(w)) == 2


def test_batch_attributes_and_segment_entries_trigger(tmp_path: Path) -> None:
    w = world(tmp_path,
              {"name": "vip_back", "target_attribute_keys": [{"name": "domain_userid"}],
               "criteria": {"all": [{"attribute": "segments:segments", "operator": "=",
                                     "value": "vip"},
                                    {"attribute": "views:n", "operator": ">=", "value": 1}]},
               "payload_attribute_groups": [{"name": "segments", "version": 1}]},
              {"name": "entered_vip", "criteria": {"attribute": "segment_changes:entered",
                                                   "operator": "=", "value": "vip"}})  # fmt: skip
    w.store.put_many({batch_key("segments", "u1"): orjson.dumps({"segments": ["vip", "x"]}),
                      batch_key("segments", "u2"): orjson.dumps({"segments": ["x"]}),
                      "i:d1": b'"u1"', "i:d2": b'"u2"'})  # fmt: skip
    w.engine.observe([view("d1"), view("d2")])
    assert fired(w) == [("vip_back", "domain_userid", "d1")]
    payload = w.con.execute("select attributes from interventions.fired").fetchone()[0]
    assert orjson.loads(payload) == {"segments": '["vip","x"]'}

    w.con.execute(
        "create schema derived; create table derived.segment_changes (user_id "
        "varchar, segment varchar, change_type varchar, changed_at timestamp)"
    )
    t0 = datetime(2026, 1, 1)
    w.con.execute("insert into derived.segment_changes values ('u2', 'vip', 'enter', ?), "
                  "('u1', 'x', 'exit', ?)", [t0, t0])  # fmt: skip
    w.it.on_batch(w.con, SimpleNamespace(changed={}))
    w.it.on_batch(w.con, SimpleNamespace(changed={}))  # the same change: nothing new
    w.con.execute(
        "insert into derived.segment_changes values ('u2', 'vip', 'exit', ?), "
        "('u2', 'vip', 'enter', ?)",
        [t0 + timedelta(hours=1), t0 + timedelta(hours=2)],
    )
    w.it.on_batch(w.con, SimpleNamespace(changed={}))
    assert fired(w)[1:] == [("entered_vip", "user_id", "u2")] * 2  # each entry, not the exit
    # a refresh's changed users re-evaluate the rules reading their batch groups
    w.store.put_many({batch_key("segments", "u2"): orjson.dumps({"segments": ["vip"]})})
    w.it.on_batch(w.con, SimpleNamespace(changed={"segments": ["u2"]}))
    assert fired(w)[-1] == ("vip_back", "domain_userid", "d2")


def test_operators_on_lists_and_nulls() -> None:
    segments = new_registry().group("segments", 1)

    def leaf(op: str, value: Any = None) -> Leaf:
        lookup = lambda n, v: segments  # noqa: E731
        spec = {
            "name": "r",
            "criteria": {
                "attribute": "segments:segments",
                "operator": op,
                **({} if value is None else {"value": value}),
            },
        }
        criteria = compile_rule(spec, lookup).criteria
        assert isinstance(criteria, Leaf)
        return criteria

    assert holds(leaf("=", "vip"), ["x", "vip"]) and not holds(leaf("=", "vip"), ["x"])
    assert holds(leaf("!=", "vip"), ["x"]) and not holds(leaf("!=", "vip"), ["vip"])
    assert holds(leaf("in", ["a", "vip"]), ["vip"]) and holds(leaf("not in", ["a"]), ["b"])
    assert holds(leaf("like", "v%"), ["vip"]) and holds(leaf("rlike", "^v"), ["vip"])
    assert holds(leaf("not like", "v%"), ["x"]) and not holds(leaf("not rlike", "i"), ["vip"])
    assert holds(leaf("is null"), []) and holds(leaf("is null"), None)
    assert holds(leaf("is not null"), ["x"]) and not holds(leaf("=", "vip"), None)
    assert holds(leaf(">", 2), [1, 3]) and not holds(leaf(">", 2), [1, 2])
    assert holds(leaf("changed"), ["a"], ["b"]) and not holds(leaf("changed"), ["a"], ["a"])

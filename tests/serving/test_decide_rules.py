"""``decide`` parses the served rule set once per publication, not once per call (it is the
biggest value in the online store: parsing it on every call made ``decide`` ~30 ms on the demo
warehouse, bench/serving.py), and follows a newly published one at once. The same for a user's
affinity sums (most of a live score's cost): kept per user, recomputed when a sync changes
their affinities or a retrain the rule set, and bounded."""

from __future__ import annotations

import orjson
import pytest

from serving import service
from serving.batch import RULES_KEY, affinity_key
from serving.service import Api, new_registry
from serving.stores import open_store
from serving.stream import StreamEngine


def rules(version: str, neighbours: dict[str, list[list]]) -> bytes:
    return orjson.dumps({"version": version, "as_of": "2026-01-01T00:00:00",
                         "neighbours": neighbours, "popular": {"*": ["p1", "p2"]},
                         "segment_sizes": {}})  # fmt: skip


def new_api() -> tuple[Api, object]:
    store = open_store("memory")
    registry = new_registry()
    engine = StreamEngine(store)
    engine.set_groups(registry.stream_groups())
    return Api(registry, store, engine), store


def test_the_rule_set_is_parsed_once_per_publication() -> None:
    api, store = new_api()

    def ranked(device: str) -> tuple[str, list[str]]:
        got = api.decide({"domain_userid": device, "items": ["a"], "k": 2})["recommendations"]
        return got["rule_set_version"], [i["product_id"] for i in got["items"]]

    store.put_many({RULES_KEY: rules("v1", {"a": [["b", 0.9], ["c", 0.5]]})})
    assert ranked("d1") == ("v1", ["b", "c"])
    assert api._rules is not None
    parsed = api._rules[2]
    assert ranked("d2") == ("v1", ["b", "c"])
    assert api._rules[2] is parsed  # the same RuleSet: not parsed again

    store.put_many({RULES_KEY: rules("v2", {"a": [["c", 0.9]]})})  # a new publication
    assert ranked("d1") == ("v2", ["c", "p1"])  # at once; the popular items fill the rest
    assert api._rules[2] is not parsed

    store.delete([RULES_KEY])
    gone = api.decide({"domain_userid": "d1", "items": ["a"]})["recommendations"]
    assert gone["strategy"] == "none" and gone["items"] == []


def test_a_users_affinity_sums_are_kept_until_their_affinities_or_the_rule_set_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, store = new_api()

    def ranked(device: str) -> list[tuple[str, float, str | None]]:
        got = api.decide({"domain_userid": device, "k": 2})["recommendations"]["items"]
        return [(i["product_id"], i["score"], i["reason_detail"]) for i in got]

    store.put_many({RULES_KEY: rules("v1", {"a": [["b", 0.9], ["c", 0.5]], "x": [["c", 1.0]]}),
                    affinity_key("u1"): orjson.dumps({"a": 1.0})})  # fmt: skip
    assert ranked("u1") == [("b", 0.9, "a"), ("c", 0.5, "a")]
    kept = api._kept["u1"][2]
    assert ranked("u1") == [("b", 0.9, "a"), ("c", 0.5, "a")]
    assert api._kept["u1"][2] is kept  # not computed again

    store.put_many({affinity_key("u1"): orjson.dumps({"a": 1.0, "x": 2.0})})  # a sync
    assert ranked("u1") == [("c", 2.5, "x"), ("b", 0.9, "a")]
    store.put_many({RULES_KEY: rules("v2", {"x": [["b", 0.1]]})})  # a retrain
    assert ranked("u1") == [("b", 0.2, "x"), ("p1", 0.0, "*")]

    monkeypatch.setattr(service, "KEPT_BUDGET", 3)  # entries: room for one user of two
    store.put_many({RULES_KEY: rules("v3", {"a": [["b", 0.9], ["c", 0.5]]})})
    for user in ("u1", "u2", "u3"):
        store.put_many({affinity_key(user): orjson.dumps({"a": 1.0})})
        assert ranked(user) == [("b", 0.9, "a"), ("c", 0.5, "a")]
    assert list(api._kept) == ["u3"] and api._kept_size == 2  # the oldest went first

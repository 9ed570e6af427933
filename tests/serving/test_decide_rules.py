"""``decide`` parses the served rule set once per publication, not once per call (it is the
biggest value in the online store: parsing it on every call made ``decide`` ~30 ms on the demo
warehouse, bench/serving.py), and follows a newly published one at once."""

from __future__ import annotations

import orjson

from serving.batch import RULES_KEY
from serving.service import Api, new_registry
from serving.stores import open_store
from serving.stream import StreamEngine


def rules(version: str, neighbours: dict[str, list[list]]) -> bytes:
    return orjson.dumps({"version": version, "as_of": "2026-01-01T00:00:00",
                         "neighbours": neighbours, "popular": {"*": ["p1", "p2"]},
                         "segment_sizes": {}})  # fmt: skip


def test_the_rule_set_is_parsed_once_per_publication() -> None:
    store = open_store("memory")
    registry = new_registry()
    engine = StreamEngine(store)
    engine.set_groups(registry.stream_groups())
    api = Api(registry, store, engine)

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

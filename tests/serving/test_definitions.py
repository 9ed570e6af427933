"""Definitions are validated on load, and a bad one is named with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.definitions import compile_group, load_yaml
from serving.errors import DefinitionError
from serving.service import new_registry
from serving.stream import value

ROOT = Path(__file__).resolve().parents[2]


def group(**attribute) -> dict:
    base = {"name": "a", "type": "int32", "aggregation": "counter", "events": []}
    return {"name": "g", "version": 2, "attribute_key": {"name": "domain_userid"},
            "attributes": [{**base, **attribute}]}  # fmt: skip


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ({"aggregation": "most_frequent"}, "most_frequent"),
        ({"aggregation": "sum"}, "needs a property"),
        ({"aggregation": "sum", "type": "string",
          "property": {"type": "atomic", "name": "tr_total"}}, "numeric type"),
        ({"aggregation": "unique_list", "property": {"type": "atomic", "name": "page_url"}},
         "list type"),
        ({"property": {"type": "atomic", "name": "nope"}}, "'nope' is not an atomic field"),
        ({"criteria": {"all": [{"property": {"type": "atomic", "name": "event"},
                                "operator": "~", "value": 1}]}}, "criteria.all[0]"),
        ({"period": "soon"}, "not a duration"),
        ({"property": {"type": "entity", "vendor": "v", "name": "n", "major_version": 1,
                       "path": "$['x']"}}, "path"),
    ],
)  # fmt: skip
def test_a_bad_attribute_is_named_with_the_reason(attribute: dict, reason: str) -> None:
    with pytest.raises(DefinitionError) as error:
        compile_group(group(**attribute))
    assert "attribute group g_v2" in str(error.value) and "'a'" in str(error.value)
    assert reason in str(error.value)


def test_a_group_keyed_by_something_else_is_refused() -> None:
    spec = {**group(), "attribute_key": {"name": "email"}}
    with pytest.raises(DefinitionError, match=r"g_v2.*domain_userid, domain_sessionid"):
        compile_group(spec)


def test_the_repository_definitions_load_and_a_bad_file_is_named(tmp_path: Path) -> None:
    registry = new_registry()
    groups, services = load_yaml(ROOT / "serving" / "attributes.yml")
    registry.load(groups, services, source="attributes.yml")
    assert "personalization" in registry.services
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "attribute_groups:\n  - {name: x, attribute_key: {name: user_id}, attributes: []}\n"
    )
    with pytest.raises(DefinitionError, match=r"bad.yml: attribute group x_v1: .*non-empty"):
        new_registry().load(*load_yaml(bad), source=str(bad))
    # a refused definition leaves the running ones as they were
    before = dict(registry.groups)
    with pytest.raises(DefinitionError):
        registry.put_group(group(aggregation="nope"))
    assert registry.groups == before


def test_a_period_counter_falls_back_as_time_passes() -> None:
    from serving.stream import update

    attribute = compile_group(group(period="PT1H")).attributes[0]
    buckets: list = []
    import time

    now = time.time()
    for ts in (now - 3000, now - 10, now):
        update(attribute, buckets, ts, None)
    assert value(attribute, buckets, now) == 3
    assert value(attribute, buckets, now + 1200) == 2  # the first is over an hour old
    assert value(attribute, buckets, now + 4000) == 0

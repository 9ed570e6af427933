"""The schema policy on events and chunks: the allow-list, the caps on new entity columns, and
the refund of columns admitted only for an event that failed anyway."""

from __future__ import annotations

import json

import pytest

from loader.columnar import parse_block
from loader.contract import FIELDS
from loader.enriched import parse_line
from loader.errors import ConfigError
from loader.failed import FailedEvent
from loader.schema_policy import SchemaPolicy

CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"


def line(fixture_line: str, *schemas: str) -> str:
    values = fixture_line.split("\t")
    at = {f.name: i for i, f in enumerate(FIELDS)}
    entities = [{"schema": f"iglu:{s}/jsonschema/1-0-0", "data": {"n": 1}} for s in schemas]
    values[at["contexts"]] = json.dumps({"schema": CONTEXTS, "data": entities}) if schemas else ""
    values[at["unstruct_event"]] = ""
    values[at["derived_contexts"]] = ""
    return "\t".join(values)


def test_allow_list_matches_vendor_and_name_exactly(fixture_line: str) -> None:
    policy = SchemaPolicy(("com.acme/*", "org.schema/Web*"))
    assert not isinstance(
        policy.apply(parse_line(line(fixture_line, "com.acme/cart"))), FailedEvent
    )
    assert not isinstance(
        policy.apply(parse_line(line(fixture_line, "org.schema/WebPage"))), FailedEvent
    )
    # com.acme.evil/x would make a column matching com_acme_* by name: judged by its schema
    for schema in ("com.acme.evil/x", "com.other/cart", "org.schema/Person"):
        refused = policy.apply(parse_line(line(fixture_line, "com.acme/cart", schema)))
        assert isinstance(refused, FailedEvent) and refused.error_type == "schema_not_allowed"
        assert schema in refused.message and "contexts_com_acme_cart_1" in refused.raw


def test_bad_patterns_fail_fast() -> None:
    with pytest.raises(ConfigError, match="schemas_allowed"):
        SchemaPolicy(("com.acme/cart; drop table",))


def test_new_columns_are_capped_per_hour_and_in_total(fixture_line: str) -> None:
    now = [0.0]
    policy = SchemaPolicy(max_new_per_hour=3, max_columns=5, clock=lambda: now[0])
    many = parse_line(line(fixture_line, *(f"com.flood/s{i}" for i in range(400))))
    refused = policy.apply(many)
    assert isinstance(refused, FailedEvent) and "max_new_columns_per_hour=3" in refused.message
    # the flood's columns were never created: it did not use up the hour
    for i in range(3):
        assert not isinstance(
            policy.apply(parse_line(line(fixture_line, f"com.ok/a{i}"))), FailedEvent
        )
    assert isinstance(policy.apply(parse_line(line(fixture_line, "com.ok/a3"))), FailedEvent)
    assert not isinstance(policy.apply(parse_line(line(fixture_line, "com.ok/a0"))), FailedEvent)
    now[0] = 3601.0  # an hour later: two more fit under the total of five
    for i in (3, 4):
        assert not isinstance(
            policy.apply(parse_line(line(fixture_line, f"com.ok/a{i}"))), FailedEvent
        )
    total = policy.apply(parse_line(line(fixture_line, "com.ok/a5")))
    assert isinstance(total, FailedEvent) and "max_entity_columns=5" in total.message


def test_a_chunk_loses_only_the_rows_outside_the_policy(fixture_line: str) -> None:
    policy = SchemaPolicy(("com.acme/*",), max_new_per_hour=10)
    lines = [line(fixture_line, "com.acme/a"), line(fixture_line, "com.evil/x"),
             line(fixture_line), line(fixture_line, "com.acme/b", "com.evil/y")]  # fmt: skip
    chunk = policy.apply(parse_block("\n".join(lines).encode() + b"\n"))
    assert chunk.table.num_rows == 2 and chunk.good_items.to_pylist() == [0, 2]
    assert sorted(chunk.failed_items) == [1, 3]
    assert [f.error_type for f in chunk.failed] == ["schema_not_allowed"] * 2
    entity = chunk.table.column_names[len(chunk.table.column_names) - 1 :]
    assert entity == ["contexts_com_acme_a_1"]  # b came only with a refused schema
    assert policy.known == {"contexts_com_acme_a_1"}

"""The parser against Snowplow's own oracle, and every way a line can be bad."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from loader.contract import FIELDS, SchemaKey
from loader.enriched import parse_line
from loader.failed import FailedEvent

# The Scala SDK adds geo_location ("lat,lon") to its JSON; it is not an enriched TSV field.
SDK_ONLY = {"geo_location"}


def sdk_json(value: object) -> object:
    """Render a parsed value the way the Scala Analytics SDK's toJson does."""
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond // 1000:03d}"
        return text + "Z"
    return value


def test_fixture_matches_scala_sdk_field_by_field(fixture_line: str, reference: Path) -> None:
    expected = json.loads((reference / "enriched-tsv" / "fixture.expected.json").read_text())
    event = parse_line(fixture_line)
    assert not isinstance(event, FailedEvent), event
    for key, value in expected.items():
        if key in SDK_ONLY:
            continue
        assert sdk_json(event.get(key)) == value, key
    assert set(event) - set(expected) == set()


def test_every_atomic_field_is_in_the_oracle(reference: Path) -> None:
    expected = json.loads((reference / "enriched-tsv" / "fixture.expected.json").read_text())
    scalar = [
        f.name for f in FIELDS if f.name not in ("contexts", "unstruct_event", "derived_contexts")
    ]
    assert len(scalar) == 128
    assert set(scalar) <= set(expected)


@pytest.mark.parametrize(
    ("uri", "column"),
    [
        ("iglu:org.schema/WebPage/jsonschema/1-0-0", "contexts_org_schema_web_page_1"),
        ("iglu:com.acme-inc/user_ID/jsonschema/2-1-0", "contexts_com_acme_inc_user_id_2"),
        ("iglu:org.w3/PerformanceTiming/jsonschema/1-0-0", "contexts_org_w3_performance_timing_1"),
    ],
)
def test_entity_column_names(uri: str, column: str) -> None:
    assert SchemaKey.parse(uri).column("contexts") == column


def _replace(line: str, name: str, value: str) -> str:
    values = line.split("\t")
    values[[f.name for f in FIELDS].index(name)] = value
    return "\t".join(values)


@pytest.mark.parametrize(
    ("change", "error_type", "mentions"),
    [
        (lambda line: line + "\textra", "wrong_field_count", "got 132"),
        (lambda line: line.rsplit("\t", 3)[0], "wrong_field_count", "got 128"),
        (
            lambda line: _replace(line, "collector_tstamp", "yesterday"),
            "invalid_field",
            "collector_tstamp",
        ),
        (
            lambda line: _replace(line, "dvce_created_tstamp", "2013-13-45 00:00:00"),
            "invalid_field",
            "dvce_created_tstamp",
        ),
        (
            lambda line: _replace(
                line, "contexts", '{"schema": "iglu:x/y/jsonschema/1-0-0", "data": [}'
            ),
            "invalid_json",
            "contexts",
        ),
        (
            lambda line: _replace(
                line, "unstruct_event", '{"data": {"schema": "not-iglu", "data": {}}}'
            ),
            "invalid_field",
            "unstruct_event",
        ),
        (
            lambda line: _replace(line, "derived_contexts", '{"data": 3}'),
            "invalid_field",
            "derived_contexts",
        ),
        (lambda line: _replace(line, "event_id", ""), "missing_field", "event_id"),
        (lambda line: _replace(line, "event_id", "not-a-uuid"), "invalid_field", "event_id"),
        (lambda line: _replace(line, "collector_tstamp", ""), "missing_field", "collector_tstamp"),
        (lambda line: _replace(line, "txn_id", "12x"), "invalid_field", "txn_id"),
        (lambda line: _replace(line, "txn_id", "99999999999"), "invalid_field", "32-bit"),
        (lambda line: _replace(line, "geo_latitude", "nan"), "invalid_field", "geo_latitude"),
        (lambda line: _replace(line, "br_features_pdf", "yes"), "invalid_field", "br_features_pdf"),
    ],
)
def test_bad_lines_become_failed_events_with_a_reason(
    fixture_line: str, change, error_type: str, mentions: str
) -> None:
    bad = change(fixture_line)
    result = parse_line(bad, source="test")
    assert isinstance(result, FailedEvent)
    assert result.error_type == error_type
    assert mentions in result.message
    assert result.raw == bad
    assert result.source == "test"


def test_timestamps_with_offsets_are_normalised_to_utc(fixture_line: str) -> None:
    event = parse_line(
        _replace(fixture_line, "dvce_created_tstamp", "2013-11-26T02:03:57.885+02:00")
    )
    assert not isinstance(event, FailedEvent)
    assert event["dvce_created_tstamp"] == datetime(2013, 11, 26, 0, 3, 57, 885000)


def test_contexts_and_derived_contexts_of_one_schema_share_a_column(fixture_line: str) -> None:
    derived = (
        '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":['
        '{"schema":"iglu:org.schema/WebPage/jsonschema/1-0-1","data":{"genre":"derived"}}]}'
    )
    event = parse_line(_replace(fixture_line, "derived_contexts", derived))
    assert not isinstance(event, FailedEvent)
    pages = event["contexts_org_schema_web_page_1"]
    assert [(p["_schema_version"], p["genre"]) for p in pages] == [
        ("1-0-0", "blog"),
        ("1-0-1", "derived"),
    ]

"""``csv:PATH``: warehouse exports with a header, against Snowplow's web-model test data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from loader.batch import Batch
from loader.contract import ATOMIC_FIELDS, Kind
from loader.errors import ConfigError
from loader.failed import FailedEvent
from loader.sources.csv import CsvFileSource, to_csv_line
from loader.uris import SOURCES_HELP, open_source

ATOMIC_NAMES = [f.name for f in ATOMIC_FIELDS]
WEB_PAGE = "contexts_com_snowplowanalytics_snowplow_web_page_1"
CONSENT = "unstruct_event_com_snowplowanalytics_snowplow_consent_preferences_1"
EVENT_ID = "9e983d4a-e07c-4858-8e97-bdb7feb31241"


@pytest.fixture(scope="module")
def events_csv(reference: Path) -> Path:
    return reference / "snowplow-web-0.15.2" / "events.csv"


@pytest.fixture(scope="module")
def rows(events_csv: Path) -> list[dict[str, str]]:
    with events_csv.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def events(events_csv: Path) -> list[dict]:
    return list(CsvFileSource(str(events_csv)))


def oracle(kind: Kind, cell: str) -> object:
    """The typed value of a reference cell, worked out independently of the loader."""
    if cell == "":
        return None
    if kind is Kind.TSTAMP:
        return datetime.strptime(cell, "%Y-%m-%d %H:%M:%S.%f")
    if kind is Kind.INT:
        return int(cell)
    if kind is Kind.DOUBLE:
        return float(cell)
    if kind is Kind.BOOL:
        return {"true": True, "false": False}[cell.lower()]
    return cell


def write(path: Path, header: list[str], *rows: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def one(path: Path) -> dict | FailedEvent:
    (item,) = list(CsvFileSource(str(path)))
    return item


# A minimal valid export: the two required columns, one boolean, one context.
HEADER = ["event_id", "collector_tstamp", "br_cookies", f"{WEB_PAGE}_0_0"]
GOOD = [EVENT_ID, "2021-03-03 21:27:32.696", "true", '[{"id": "p1"}]']


def test_every_reference_row_is_an_event(events: list, rows: list) -> None:
    assert len(events) == len(rows) == 160
    assert [e for e in events if isinstance(e, FailedEvent)] == []


def test_atomic_values_are_the_typed_cells(events: list, rows: list) -> None:
    for event, row in zip(events, rows, strict=True):
        assert list(event)[: len(ATOMIC_NAMES)] == ATOMIC_NAMES
        for f in ATOMIC_FIELDS:
            assert event[f.name] == oracle(f.kind, row[f.name]), (row["event_id"], f.name)


def test_spot_checks_on_the_first_row(events: list) -> None:
    first = events[0]
    assert first["event_id"] == EVENT_ID
    assert first["collector_tstamp"] == datetime(2021, 3, 3, 21, 27, 32, 696000)
    assert first["dvce_created_tstamp"] == datetime(2021, 3, 3, 21, 27, 32, 1000)
    assert first["br_cookies"] is True
    assert first["br_features_flash"] is False
    assert first["dvce_ismobile"] is None
    assert first["page_urlport"] == 443
    assert first["domain_sessionidx"] == 1
    assert first["geo_latitude"] == -37.8061
    assert first["app_id"] is None  # empty cell


def test_upper_case_booleans_in_the_reference(events: list, rows: list) -> None:
    upper = [e for e, r in zip(events, rows, strict=True) if r["br_cookies"] == "TRUE"]
    assert upper and all(e["br_cookies"] is True for e in upper)


def test_entity_columns_renamed_with_schema_version_first(events: list) -> None:
    names = set().union(*(list(e)[len(ATOMIC_NAMES) :] for e in events))
    assert names == {
        WEB_PAGE,
        CONSENT,
        "unstruct_event_com_snowplowanalytics_snowplow_cmp_visible_1",
        "contexts_com_iab_snowplow_spiders_and_robots_1",
        "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1",
        "contexts_nl_basjes_yauaa_context_1",
    }
    for event in events:
        for name in list(event)[len(ATOMIC_NAMES) :]:
            if name.startswith("contexts_"):
                assert event[name], name
                for entity in event[name]:
                    assert next(iter(entity.items())) == ("_schema_version", "1-0-0")
            else:
                assert isinstance(event[name], dict)
                assert "_schema_version" not in event[name]
    bot = events[0]["contexts_com_iab_snowplow_spiders_and_robots_1"]
    assert bot == [
        {
            "_schema_version": "1-0-0",
            "category": "BROWSER",
            "primaryImpact": "NONE",
            "reason": "PASSED_ALL",
            "spiderOrRobot": False,
        }
    ]


def test_web_page_id_for_every_page_view(events: list, rows: list) -> None:
    page_views = [(e, r) for e, r in zip(events, rows, strict=True) if r["event"] == "page_view"]
    assert len(page_views) == 50
    for event, row in page_views:
        cell = json.loads(row[f"{WEB_PAGE}_0_0"])
        assert event[WEB_PAGE] == [{"_schema_version": "1-0-0", "id": cell[0]["id"]}]
    # One page view carries {"id": null} on purpose: the package's "NULL page_view_id" case.
    missing = [e["user_id"] for e, _ in page_views if e[WEB_PAGE][0]["id"] is None]
    assert missing == ["NULL page_view_id"]


def test_reference_quirks_nested_contexts_and_wrapped_unstruct(events: list, rows: list) -> None:
    # 65 rows (app_id consent_accel) hold the web_page context as [[{...}]] and every unstruct
    # value as [{...}]; both are unwrapped rather than failed.
    nested = [
        (e, r) for e, r in zip(events, rows, strict=True) if r[f"{WEB_PAGE}_0_0"].startswith("[[")
    ]
    assert len(nested) == 65
    for event, row in nested:
        (entity,) = event[WEB_PAGE]
        assert entity == {"_schema_version": "1-0-0", **json.loads(row[f"{WEB_PAGE}_0_0"])[0][0]}
    consents = [e for e in events if e.get(CONSENT)]
    assert len(consents) == 32
    assert all(e[CONSENT]["basis_for_processing"] == "consent" for e in consents)


def test_non_uuid_event_ids_are_kept(events: list) -> None:
    # The export is the warehouse's truth; 24 reference ids are hashes or typos, not UUIDs.
    odd = [e["event_id"] for e in events if not _is_uuid(e["event_id"])]
    assert len(odd) == 24
    assert "1h2c6742-7a16-478d-b106-96f9a9a54547" in odd


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def test_load_tstamp_is_ignored(events: list, rows: list) -> None:
    assert sum(1 for r in rows if r["load_tstamp"]) == 65
    assert all("load_tstamp" not in e for e in events)


def test_events_fit_a_batch(events: list) -> None:
    batch = Batch()
    for event in events:
        batch.add(event)
    table = batch.to_arrow()
    assert table.num_rows == 160
    assert WEB_PAGE in table.column_names


def test_a_good_small_file_and_any_column_subset(tmp_path: Path) -> None:
    event = one(write(tmp_path / "e.csv", HEADER, GOOD))
    assert not isinstance(event, FailedEvent)
    assert list(event) == [*ATOMIC_NAMES, WEB_PAGE]
    assert event["br_cookies"] is True
    assert event["page_url"] is None
    assert event[WEB_PAGE] == [{"_schema_version": "1-0-0", "id": "p1"}]


@pytest.mark.parametrize(
    ("column", "cell", "error_type"),
    [
        ("collector_tstamp", "yesterday", "invalid_field"),
        ("br_cookies", "yes", "invalid_field"),
        (f"{WEB_PAGE}_0_0", '[{"id": ', "invalid_json"),
        (f"{WEB_PAGE}_0_0", '{"id": "p1"}', "invalid_field"),
        (f"{WEB_PAGE}_0_0", '["p1"]', "invalid_field"),
    ],
)
def test_a_bad_cell_fails_its_row_naming_the_column(
    tmp_path: Path, column: str, cell: str, error_type: str
) -> None:
    row = list(GOOD)
    row[HEADER.index(column)] = cell
    path = write(tmp_path / "bad.csv", HEADER, GOOD, row)
    good, failed = list(CsvFileSource(str(path)))
    assert not isinstance(good, FailedEvent)
    assert isinstance(failed, FailedEvent)
    assert failed.error_type == error_type
    assert failed.message.startswith(f"{column}: ")
    assert failed.source == f"csv:{path}"
    assert failed.raw == path.read_text().splitlines()[2]
    assert next(csv.reader([failed.raw])) == row  # replayable


def test_bad_int_and_unstruct_that_is_not_an_object(tmp_path: Path) -> None:
    unstruct = f"{CONSENT}_0_0"
    header = ["event_id", "collector_tstamp", "page_urlport", unstruct]
    path = write(
        tmp_path / "e.csv",
        header,
        [EVENT_ID, "2021-03-03 21:27:32", "4.5", ""],
        [EVENT_ID, "2021-03-03 21:27:32", "", '"consent"'],
        [EVENT_ID, "2021-03-03 21:27:32", "", '[{"a": 1}, {"a": 2}]'],
        [EVENT_ID, "2021-03-03 21:27:32", "", '{"a": 1}'],
    )
    port, text, two, ok = list(CsvFileSource(str(path)))
    assert (port.error_type, port.message.split(":")[0]) == ("invalid_field", "page_urlport")
    assert (text.error_type, text.message.split(":")[0]) == ("invalid_field", unstruct)
    assert (two.error_type, two.message.split(":")[0]) == ("invalid_field", unstruct)
    assert ok[CONSENT] == {"a": 1}


def test_wrong_cell_count(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", HEADER, GOOD[:2], [*GOOD, "extra"])
    short, long = list(CsvFileSource(str(path)))
    assert (short.error_type, long.error_type) == ("wrong_field_count", "wrong_field_count")
    assert "expected 4" in short.message and "got 2" in short.message
    assert next(csv.reader([long.raw])) == [*GOOD, "extra"]


def test_missing_required_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.csv",
        HEADER,
        ["", *GOOD[1:]],
        [GOOD[0], "", *GOOD[2:]],
    )
    no_id, no_time = list(CsvFileSource(str(path)))
    assert (no_id.error_type, no_id.message) == ("missing_field", "event_id is required")
    assert no_time.message == "collector_tstamp is required"
    assert next(csv.reader([no_id.raw])) == ["", *GOOD[1:]]


def test_raw_quotes_cells_with_newlines_and_commas() -> None:
    row = ["a,b", 'say "hi"', "two\nlines", "cr\rhere", ""]
    assert next(csv.reader([to_csv_line(row)])) == row


def test_versions_merge_into_one_column_in_header_order(tmp_path: Path) -> None:
    header = [
        "event_id",
        "collector_tstamp",
        f"{WEB_PAGE}_0_1",
        f"{WEB_PAGE}_0_0",
        WEB_PAGE,
        f"{CONSENT}_0_0",
        f"{CONSENT}_0_1",
    ]
    base = [EVENT_ID, "2021-03-03 21:27:32"]
    path = write(
        tmp_path / "e.csv",
        header,
        [*base, '[{"id": "a"}]', '[{"id": "b"}, {"id": "c"}]', '[{"id": "d"}]', "", '{"x": 1}'],
        [*base, "", "[]", "null", '{"x": 1}', '{"x": 2}'],
    )
    merged, both = list(CsvFileSource(str(path)))
    assert merged[WEB_PAGE] == [
        {"_schema_version": "1-0-1", "id": "a"},
        {"_schema_version": "1-0-0", "id": "b"},
        {"_schema_version": "1-0-0", "id": "c"},
        {"id": "d"},  # already a major-only column: passed through
    ]
    assert merged[CONSENT] == {"x": 1}
    assert list(merged)[len(ATOMIC_NAMES) :] == [WEB_PAGE, CONSENT]
    assert isinstance(both, FailedEvent)
    assert both.error_type == "invalid_field"
    assert both.message.startswith(f"{CONSENT}_0_1: ")


def test_an_empty_contexts_value_adds_no_column(tmp_path: Path) -> None:
    event = one(write(tmp_path / "e.csv", HEADER, [*GOOD[:3], "[]"]))
    assert WEB_PAGE not in event


def test_the_column_version_wins_over_one_in_the_entity(tmp_path: Path) -> None:
    cell = '[{"id": "p1", "_schema_version": "9-9-9"}]'
    event = one(write(tmp_path / "e.csv", HEADER, [*GOOD[:3], cell]))
    assert event[WEB_PAGE] == [{"_schema_version": "1-0-0", "id": "p1"}]
    assert next(iter(event[WEB_PAGE][0])) == "_schema_version"


def test_export_dialects(tmp_path: Path) -> None:
    # BigQuery's ' UTC' timestamps, 1/0 booleans, Snowflake's upper-case header, a BOM.
    path = tmp_path / "e.csv"
    header = ",".join(h.upper() for h in HEADER)
    row = f'{EVENT_ID},2021-03-03 21:27:32.696000 UTC,0,"[{{""id"": ""p1""}}]"'
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}\r\n{row}\r\n\r\n".encode())
    event = one(path)
    assert event["collector_tstamp"] == datetime(2021, 3, 3, 21, 27, 32, 696000)
    assert event["br_cookies"] is False
    assert event[WEB_PAGE] == [{"_schema_version": "1-0-0", "id": "p1"}]


def test_bytes_that_are_not_utf8_fail_their_row_only(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", HEADER, GOOD)
    with path.open("ab") as fh:
        fh.write(f"{EVENT_ID},2021-03-03 21:27:32,true,".encode() + b'"[{""id"": ""\xff""}]"\r\n')
        fh.write(",".join(GOOD[:3]).encode() + b',"[{""id"": ""\xc3\xa9""}]"\r\n')
    good, bad, accented = list(CsvFileSource(str(path)))
    assert good["event_id"] == EVENT_ID
    assert bad.error_type == "invalid_encoding"
    assert f"{WEB_PAGE}_0_0" in bad.message
    assert "\\xff" in bad.raw
    bad.raw.encode("utf-8")  # storable: no lone surrogates
    assert accented[WEB_PAGE][0]["id"] == "é"


def test_unknown_columns_are_refused_before_any_row(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", [*HEADER, "colour", "contexts"], [*GOOD, "red", ""])
    with pytest.raises(ConfigError) as info:
        CsvFileSource(str(path))
    message = str(info.value)
    assert "'colour'" in message and "'contexts'" in message
    assert str(path) in message
    assert "self-describing JSON" in message


def test_duplicate_columns_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", [*HEADER, "event_id"], [*GOOD, EVENT_ID])
    with pytest.raises(ConfigError, match="'event_id' appear more than once"):
        CsvFileSource(str(path))


def test_empty_and_header_only_files_have_no_events(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert list(CsvFileSource(str(empty))) == []
    assert list(CsvFileSource(str(write(tmp_path / "h.csv", HEADER)))) == []


def test_a_cell_larger_than_the_csv_default_limit(tmp_path: Path) -> None:
    big = json.dumps([{"id": "p1", "blob": "x" * 300_000}])
    event = one(write(tmp_path / "e.csv", HEADER, [*GOOD[:3], big]))
    assert len(event[WEB_PAGE][0]["blob"]) == 300_000


def test_csv_uri(tmp_path: Path, events_csv: Path) -> None:
    assert "csv:PATH" in SOURCES_HELP
    source = open_source(f"csv:{events_csv}")
    assert isinstance(source, CsvFileSource)
    assert source.name == f"csv:{events_csv}"
    with pytest.raises(ConfigError, match="no such file"):
        open_source(f"csv:{tmp_path / 'missing.csv'}")


def test_load_reference_export_end_to_end(tmp_path: Path, events_csv: Path) -> None:
    db = tmp_path / "w.duckdb"
    source, sink = f"csv:{events_csv}", f"duckdb:{db}"
    done = subprocess.run(
        [sys.executable, "-m", "loader", "--source", source, "--sink", sink, "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded 160 events (0 failed)" in done.stdout
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from atomic.events").fetchone() == (160,)
    assert con.execute("select count(*) from atomic.failed_events").fetchone() == (0,)
    ids = con.execute(
        f"select count(*), count({WEB_PAGE}->>'$[0].id') from atomic.events "
        "where event = 'page_view'"
    ).fetchone()
    assert ids == (50, 49)  # one {"id": null} on purpose ("NULL page_view_id")
    loaded_at = con.execute("select count(distinct load_tstamp) from atomic.events").fetchone()
    assert loaded_at == (1,)  # the loader's own, not the file's (65 rows had one, 95 none)


def test_unknown_column_fails_the_cli_before_the_sink(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", [*HEADER, "colour"], [*GOOD, "red"])
    db = tmp_path / "w.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "loader", "--source", f"csv:{path}", "--sink", f"duckdb:{db}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown column(s) 'colour'" in done.stderr
    assert not db.exists()

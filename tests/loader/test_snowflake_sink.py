"""The Snowflake sink against a fake of the snowpipe-streaming SDK's channel interface.

Snowflake itself cannot run here. The fake keeps the SDK's contract that matters to the loader:
rows become visible when their offset token is committed, the latest committed token survives
the loader, and rows with columns the table lacks are rejected (as the pipe would).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loader import pipeline
from loader.contract import FIELDS
from loader.enriched import parse_line
from loader.errors import TerminalSinkError
from loader.sinks.snowflake import SnowflakeSink
from loader.sources.tsv import TsvFileSource


class FakeTable:
    def __init__(self, columns: set[str]) -> None:
        self.columns = {c.upper() for c in columns}
        self.rows: list[dict[str, Any]] = []
        self.tokens: dict[str, str | None] = {}


class FakeChannel:
    def __init__(self, table: FakeTable, name: str, crash_before_commit: bool = False) -> None:
        self.table, self.name, self.crash = table, name, crash_before_commit
        self.columns = set(table.columns)  # what the pipe saw when the channel opened
        self.closed = False

    def append_rows(self, rows, start_offset_token=None, end_offset_token=None) -> None:
        for row in rows:
            unknown = set(row) - self.columns
            if unknown:
                raise FakeError("INVALID_ARGUMENT", f"unknown columns {sorted(unknown)}")
        if self.crash:
            raise KeyboardInterrupt("loader killed before Snowflake committed")
        self.table.rows.extend(rows)
        self.table.tokens[self.name] = end_offset_token

    def get_latest_committed_offset_token(self) -> str | None:
        return self.table.tokens.get(self.name)

    def wait_for_commit(self, token_checker: Callable[[str | None], bool], timeout_seconds=None):
        assert token_checker(self.get_latest_committed_offset_token())

    def close(self, drop: bool = False, wait_for_flush: bool = True) -> None:
        self.closed = True


class FakeErrorCode:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = FakeErrorCode(code)


class FakeClient:
    def __init__(self, table: FakeTable | None, crash: bool = False) -> None:
        self.table, self.crash, self.opened = table, crash, 0

    def open_channel(self, channel_name: str, offset_token: str | None = None):
        if self.table is None:
            raise FakeError("SF_API_NOT_FOUND_ERROR", "Pipe EVENTS-STREAMING does not exist")
        self.opened += 1
        return FakeChannel(self.table, channel_name, self.crash), object()


ATOMIC = {f.name for f in FIELDS if f.kind.value not in ("contexts", "unstruct")} | {"load_tstamp"}
FAILED = {"failed_at", "source", "error_type", "message", "raw"}


def sink_for(events: FakeTable, failed: FakeTable, crash: bool = False) -> SnowflakeSink:
    def add_column(name: str) -> None:
        events.columns.add(name.upper())

    return SnowflakeSink(FakeClient(events, crash), FakeClient(failed), "loader-1",
                         events.columns, add_column)  # fmt: skip


def tsv(tmp_path: Path, fixture_line: str, n: int) -> Path:
    values = fixture_line.split("\t")
    lines = []
    for _ in range(n):
        values[6] = str(uuid.uuid4())
        lines.append("\t".join(values))
    lines.insert(3, "broken line")
    path = tmp_path / "events.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batches_commit_with_offset_tokens_and_new_entity_columns(tmp_path, fixture_line) -> None:
    events, failed = FakeTable(ATOMIC), FakeTable(FAILED)
    sink = sink_for(events, failed)
    summary = pipeline.run(TsvFileSource(str(tsv(tmp_path, fixture_line, 10))), sink, batch_rows=4)
    assert (summary.good, summary.failed) == (10, 1)
    assert len(events.rows) == 10 and len(failed.rows) == 1
    assert failed.rows[0]["RAW"] == "broken line"
    # the fixture's entities became VARIANT columns before their rows were appended
    assert "CONTEXTS_ORG_SCHEMA_WEB_PAGE_1" in events.columns
    assert events.rows[0]["CONTEXTS_ORG_SCHEMA_WEB_PAGE_1"][0]["author"] == "Fred Blundun"
    assert events.tokens["loader-1"] == f"items:{11:020d}"  # 11 items read, all committed


def test_a_restarted_loader_resumes_after_the_last_committed_token(tmp_path, fixture_line) -> None:
    events, failed = FakeTable(ATOMIC), FakeTable(FAILED)
    path = tsv(tmp_path, fixture_line, 10)
    crashing = sink_for(events, failed)
    original = crashing._append

    def crash_on_the_second_batch(channel, rows, token, table):
        if table == "EVENTS" and events.rows:  # killed before Snowflake committed batch 2
            raise KeyboardInterrupt
        original(channel, rows, token, table)

    crashing._append = crash_on_the_second_batch
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(TsvFileSource(str(path)), crashing, batch_rows=4)
    assert len(events.rows) == 3  # batch 1: lines 1-4, one of them broken
    assert events.tokens["loader-1"] == f"items:{4:020d}"
    pipeline.run(TsvFileSource(str(path)), sink_for(events, failed), batch_rows=4)
    ids = [r["EVENT_ID"] for r in events.rows]
    assert len(ids) == len(set(ids)) == 10  # nothing lost, nothing loaded twice
    assert [r["RAW"] for r in failed.rows] == ["broken line"]


def test_setup_problems_fail_with_what_to_do() -> None:
    with pytest.raises(TerminalSinkError, match=r"does not exist \(docs/snowflake.md\)"):
        SnowflakeSink(FakeClient(None), FakeClient(FakeTable(FAILED)), "l", ATOMIC, lambda c: None)
    events = FakeTable(ATOMIC)
    sink = SnowflakeSink(FakeClient(events), FakeClient(FakeTable(FAILED)), "l", ATOMIC,
                         lambda c: None)  # fmt: skip  # an ALTER that silently does nothing
    line = (Path(__file__).parents[1] / "reference" / "enriched-tsv" / "fixture.tsv").read_text()
    from loader.batch import Batch

    batch = Batch()
    batch.add(parse_line(line.strip()))
    with pytest.raises(TerminalSinkError, match="rejected as invalid"):
        sink.write(batch)


def test_a_channel_never_resumes_one_kind_of_source_from_anothers_position() -> None:
    from loader import offsets
    from loader.errors import ConfigError
    from loader.pipeline import Counted

    assert offsets.parse(offsets.token("spool", 3, 42), "spool") == [3, 42]
    assert offsets.token("items", 9) < offsets.token("items", 10)  # string order = position order
    # a Kafka token lists the partitions held at the time: compared as positions, not strings
    first, later = offsets.token("kafka", 1, 5), offsets.token("kafka", 0, 3, 1, 9)
    assert later < first  # as strings the later batch would look older...
    assert offsets.reached(later, first) and not offsets.reached(first, later)  # ...not so
    assert offsets.reached(later, later) and not offsets.reached(None, later)
    assert not offsets.reached(offsets.token("kafka", 0, 3), offsets.token("kafka", 0, 3, 1, 1))
    assert offsets.reached(offsets.token("spool", 3, 0), offsets.token("spool", 2, 900))
    assert not offsets.reached(offsets.token("items", 9), offsets.token("spool", 1, 0))
    with pytest.raises(ConfigError, match=r"expected items.*--channel"):
        Counted([]).seek(offsets.token("spool", 1, 0))

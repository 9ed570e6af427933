"""The Snowflake sink against a fake of Snowpipe Streaming as unkind as the SDK, writing into
fakesnow tables (tests/snowflake/streaming_fake.py says what it copies from the SDK's source).

Snowflake itself cannot run here. What these prove: batches commit with their offset tokens and
a restart resumes after the last committed one; an append returns before the server looked at
its rows, and rows the server skips (seen only in the channel status) become failed events
with the rows, or stop the loader when the failed-events table itself refuses them; a commit
wait that times out is retried without doubling or skipping the batch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loader import pipeline
from loader.batch import Batch
from loader.enriched import parse_line
from loader.errors import TerminalSinkError, TransientSinkError
from loader.sinks import snowflake_tables as tables
from loader.sinks.snowflake import SnowflakeSink
from loader.sources.tsv import TsvFileSource
from tests.snowflake.conftest import FAKESNOW_ARROW_COPY
from tests.snowflake.differential import DATABASE, Fakesnow
from tests.snowflake.streaming_fake import FakeClient, FakeStreamingError

pytestmark = pytest.mark.filterwarnings(FAKESNOW_ARROW_COPY)
EVENTS = f"{DATABASE}.ATOMIC.EVENTS"


@pytest.fixture
def snow() -> Iterator[Fakesnow]:
    account = Fakesnow()
    yield account
    account.close()


def sink_for(snow: Fakesnow, *, timeout: int = 120, present: bool = True,
             add_column: Any = None) -> SnowflakeSink:  # fmt: skip
    def lookup(ids: list[str]) -> set[str]:
        marks = ", ".join(["%s"] * len(ids))
        snow.cursor.execute(f"select event_id from {EVENTS} where event_id in ({marks})", ids)
        return {r[0] for r in snow.cursor.fetchall()}

    sink = snow.sink("loader-1")
    if add_column is not None:
        sink._add_column = add_column
    sink.timeout = timeout
    sink._present = lookup if present else None
    return sink


def count(snow: Fakesnow, table: str = EVENTS, where: str = "true") -> int:
    snow.cursor.execute(f"select count(*) from {table} where {where}")
    return int(snow.cursor.fetchone()[0])


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


def batch_of(fixture_line: str, n: int, token: str = "items:00000000000000000009") -> Batch:
    values = fixture_line.split("\t")
    batch = Batch()
    for _ in range(n):
        values[6] = str(uuid.uuid4())
        batch.add(parse_line("\t".join(values)))
    batch.offset_token = token
    return batch


def test_batches_commit_with_offset_tokens_and_new_entity_columns(
    snow: Fakesnow, tmp_path: Path, fixture_line: str
) -> None:
    sink = sink_for(snow)
    summary = pipeline.run(TsvFileSource(str(tsv(tmp_path, fixture_line, 10))), sink, batch_rows=4)
    assert (summary.good, summary.failed) == (10, 1)
    assert count(snow) == 10 and count(snow, f"{DATABASE}.ATOMIC.FAILED_EVENTS") == 1
    # the fixture's entity became a column (ALTER TABLE on fakesnow) before its rows arrived
    assert "CONTEXTS_ORG_SCHEMA_WEB_PAGE_1" in snow.server.columns("EVENTS")
    snow.cursor.execute(f"select contexts_org_schema_web_page_1[0]:author::varchar from {EVENTS}")
    assert {r[0] for r in snow.cursor.fetchall()} == {"Fred Blundun"}
    assert sink.committed_offset_token() == f"items:{11:020d}"  # 11 items read, all committed


def test_an_append_returns_before_the_server_has_looked_at_the_rows(snow: Fakesnow) -> None:
    """The SDK's append_rows is fire-and-forget: no error for a bad row, nothing visible yet."""
    client = FakeClient(snow.server, "EVENTS")
    channel, _ = client.open_channel("probe")
    channel.append_rows([{"EVENT_ID": "a", "NO_SUCH_COLUMN": 1}, {"EVENT_ID": "b"}],
                        end_offset_token="items:1")  # fmt: skip
    assert count(snow) == 0 and channel.get_latest_committed_offset_token() is None
    channel.wait_for_commit(lambda t: t == "items:1", timeout_seconds=10)
    status = channel.get_channel_status()
    assert count(snow) == 1  # the good row; the token advanced past the bad one
    assert (status.rows_error_count, status.last_error_offset_token_upper_bound) == (1, "items:1")
    assert "NO_SUCH_COLUMN" in (status.last_error_message or "")
    with pytest.raises(ValueError, match="serialize"):
        channel.append_rows([{"EVENT_ID": object()}])


def test_a_restarted_loader_resumes_after_the_last_committed_token(
    snow: Fakesnow, tmp_path: Path, fixture_line: str
) -> None:
    path = tsv(tmp_path, fixture_line, 10)
    crashing = sink_for(snow)
    original = crashing._deliver

    def killed_on_the_second_batch(role: str, rows: list[Any], token: str) -> Any:
        if role == "EVENTS" and count(snow):  # appended, then killed before the commit
            crashing._channel.append_rows(rows, end_offset_token=token)
            raise KeyboardInterrupt
        return original(role, rows, token)

    crashing._deliver = killed_on_the_second_batch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(TsvFileSource(str(path)), crashing, batch_rows=4)
    assert count(snow) == 3  # batch 1: lines 1-4, one of them broken
    # the new process opens the channel: the killed one's append is never committed
    pipeline.run(TsvFileSource(str(path)), sink_for(snow), batch_rows=4)
    snow.server.flush()
    assert count(snow) == 10
    snow.cursor.execute(f"select count(distinct event_id) from {EVENTS}")
    assert snow.cursor.fetchone()[0] == 10  # nothing lost, nothing loaded twice
    assert count(snow, f"{DATABASE}.ATOMIC.FAILED_EVENTS") == 1


def test_rows_the_events_table_skips_become_failed_events_with_the_rows(
    snow: Fakesnow, fixture_line: str
) -> None:
    """A column of the wrong type (set up by hand): the append succeeds, the commit comes, and
    only the status says rows were skipped. The sink finds which, and keeps them."""
    snow.execute(f"alter table {EVENTS} drop column br_features_pdf")
    snow.execute(f"alter table {EVENTS} add column br_features_pdf number(38, 0)")
    batch = batch_of(fixture_line, 3)
    sink = sink_for(snow)
    sink.write(batch)
    assert count(snow) == 0  # every row carries br_features_pdf as a boolean
    snow.cursor.execute(f"select error_type, message, raw from {DATABASE}.ATOMIC.FAILED_EVENTS")
    failed = snow.cursor.fetchall()
    assert len(failed) == 3 and {f[0] for f in failed} == {"warehouse_rejected"}
    assert "skipped 3 of 3 rows" in failed[0][1] and "BR_FEATURES_PDF" in failed[0][1]
    ids = {json.loads(f[2])["EVENT_ID"] for f in failed}
    assert ids == {e["event_id"] for e in batch.event_dicts()}  # the rows themselves, replayable
    assert sink.committed_offset_token() == batch.offset_token and sink.rejected_rows == 3


def test_without_a_lookup_the_whole_batch_is_kept_as_failed_events(
    snow: Fakesnow, fixture_line: str
) -> None:
    sink = sink_for(snow, present=False, add_column=lambda name: None)  # an ALTER that did nothing
    batch = batch_of(fixture_line, 2)
    sink.write(batch)
    assert count(snow) == 0
    snow.cursor.execute(f"select message from {DATABASE}.ATOMIC.FAILED_EVENTS")
    messages = [r[0] for r in snow.cursor.fetchall()]
    assert len(messages) == 2 and "unknown columns" in messages[0]
    assert "replaying it is safe" in messages[0]


def test_a_failed_events_table_that_refuses_rows_stops_the_loader(snow: Fakesnow) -> None:
    snow.execute(f"alter table {DATABASE}.ATOMIC.FAILED_EVENTS drop column raw")
    sink = sink_for(snow)
    batch = Batch()
    batch.add(parse_line("not an event"))
    batch.offset_token = "items:00000000000000000001"
    with pytest.raises(TerminalSinkError, match=r"FAILED_EVENTS rejected 1 rows .*persona snow"):
        sink.write(batch)


@pytest.mark.parametrize("commits_meanwhile", [True, False])
def test_a_commit_timeout_is_retried_without_doubling_or_skipping(
    snow: Fakesnow, fixture_line: str, commits_meanwhile: bool
) -> None:
    """The wait gives up while the append is still in flight. Either it commits before the retry
    (the retry must not append again) or it never does (the retry must append it)."""
    sink = sink_for(snow, timeout=5)
    batch = batch_of(fixture_line, 4)
    snow.server.commit_delay = 60
    with pytest.raises(TransientSinkError, match=r"no commit of items:0+9 within 5 s"):
        sink.write(batch)
    snow.server.commit_delay = 2
    if commits_meanwhile:
        snow.server.tick(60)
        assert count(snow) == 4
    sink.write(batch)  # the pipeline's retry
    snow.server.flush()
    assert count(snow) == 4 and sink.committed_offset_token() == batch.offset_token


def test_a_channel_invalid_on_the_server_is_reopened_on_retry(
    snow: Fakesnow, fixture_line: str
) -> None:
    sink = sink_for(snow)
    batch = batch_of(fixture_line, 2)
    snow.server.channels[("EVENTS", "loader-1")].status_code = "INVALID_CHANNEL"
    with pytest.raises(TransientSinkError, match="invalid in the remote"):
        sink.write(batch)
    snow.server.channels[("EVENTS", "loader-1")].status_code = "SUCCESS"
    sink.write(batch)
    assert count(snow) == 2


def test_setup_problems_fail_with_what_to_do(snow: Fakesnow) -> None:
    snow.server.missing_tables.add("EVENTS")
    with pytest.raises(TerminalSinkError, match=r"does not exist \(docs/snowflake.md\)"):
        snow.sink("l")
    error = FakeStreamingError("SF_API_AUTH_ERROR", "JWT token is invalid")
    from loader.sinks.snowflake import _translate

    assert isinstance(_translate(error, "opening"), TerminalSinkError)
    assert isinstance(_translate(FakeStreamingError("RECEIVER_SATURATED", "429"), "x"),
                      TransientSinkError)  # fmt: skip


def test_a_new_entity_column_is_added_and_the_channel_reopened(
    snow: Fakesnow, fixture_line: str
) -> None:
    """ALTER TABLE ADD COLUMN on fakesnow's table, typed as the Streaming Loader types it; the
    rows appended after the reopen land in it (a channel opened before would skip them)."""
    sink = sink_for(snow)
    opened = snow.server.channels
    sink.write(batch_of(fixture_line, 2))
    # fakesnow keeps ARRAY and OBJECT as VARIANT (DuckDB JSON); the DDL says which
    assert snow.server.columns("EVENTS")["CONTEXTS_ORG_SCHEMA_WEB_PAGE_1"] == "VARIANT"
    assert tables.add_entity_column(EVENTS, "contexts_org_schema_web_page_1").endswith(" array")
    assert count(snow, where="contexts_org_schema_web_page_1 is not null") == 2
    assert ("EVENTS", "loader-1") in opened


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


def test_connect_checks_its_configuration_before_anything_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loader.errors import ConfigError
    from loader.sinks.snowflake import connect

    with pytest.raises(ConfigError, match=r"expected snowflake:DATABASE\.SCHEMA"):
        connect("persona; drop", "c")
    for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER"):
        connect("persona.atomic", "c")
    for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.setenv(name, "x")
    try:
        import snowflake.ingest.streaming  # noqa: F401
    except ImportError:  # the SDK is not installed here: a clear message, not a traceback
        with pytest.raises(ConfigError, match=r"needs the snowflake extra"):
            connect("persona.atomic", "c")

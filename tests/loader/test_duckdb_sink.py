"""The DuckDB sink on a real database file."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from loader import pipeline
from loader.batch import Batch
from loader.contract import ATOMIC_FIELDS, FIELDS
from loader.enriched import parse_line
from loader.errors import TerminalSinkError, TransientSinkError
from loader.failed import FailedEvent
from loader.sinks.duckdb import EVENTS_DDL, DuckDBSink


def make_line(fixture_line: str, **fields: str) -> str:
    values = fixture_line.split("\t")
    names = [f.name for f in FIELDS]
    values[names.index("event_id")] = str(uuid.uuid4())
    for name, value in fields.items():
        values[names.index(name)] = value
    return "\t".join(values)


def test_events_and_failed_events_land_in_one_commit(tmp_path: Path, fixture_line: str) -> None:
    db = tmp_path / "w.duckdb"
    items = [parse_line(make_line(fixture_line)) for _ in range(3)] + [parse_line("garbage")]
    summary = pipeline.run(items, DuckDBSink(db), batch_rows=2)
    assert (summary.good, summary.failed, summary.batches) == (3, 1, 2)
    con = duckdb.connect(str(db))
    assert con.execute("select count(distinct event_id) from atomic.events").fetchone() == (3,)
    row = con.execute("select error_type, raw from atomic.failed_events").fetchone()
    assert row == ("wrong_field_count", "garbage")
    cols = [r[0] for r in con.execute("describe atomic.events").fetchall()]
    assert cols[: len(ATOMIC_FIELDS)] == [f.name for f in ATOMIC_FIELDS]
    web_page = con.execute(
        "select contexts_org_schema_web_page_1->>'$[0].author' from atomic.events limit 1"
    ).fetchone()
    assert web_page == ("Fred Blundun",)


def test_a_batch_ends_at_its_byte_limit(tmp_path: Path, fixture_line: str) -> None:
    """Rows, bytes or time, whichever comes first: big events make small batches."""
    lines = [make_line(fixture_line) for _ in range(2000)]
    one = Batch()
    for line in lines[:1000]:  # a table's worth, to learn what an event weighs in Arrow
        one.add(parse_line(line))
    per_event = one.nbytes / 1000
    assert 500 < per_event < 20_000 and one.tables
    limit = int(per_event * 300)
    summary = pipeline.run(
        (parse_line(line) for line in lines), DuckDBSink(tmp_path / "w.duckdb"),
        batch_rows=10_000, batch_seconds=60, batch_bytes=limit,
    )  # fmt: skip
    assert summary.good == 2000
    assert 2000 / 300 - 1 <= summary.batches <= 2000 / 100  # nowhere near one 2,000-row batch
    failed = Batch()
    failed.add(parse_line("x" * 5000))
    assert failed.nbytes >= 5000  # a failed event weighs its raw input


def test_a_new_entity_schema_adds_a_column(tmp_path: Path, fixture_line: str) -> None:
    db = tmp_path / "w.duckdb"
    sink = DuckDBSink(db)
    pipeline.run([parse_line(make_line(fixture_line))], sink)
    context = {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
        "data": [{"schema": "iglu:com.acme/checkout_step/jsonschema/2-0-1", "data": {"step": 3}}],
    }
    pipeline.run([parse_line(make_line(fixture_line, contexts=json.dumps(context)))], sink)
    sink.close()
    con = duckdb.connect(str(db))
    rows = con.execute(
        "select contexts_com_acme_checkout_step_2->>'$[0].step', "
        "contexts_com_acme_checkout_step_2->>'$[0]._schema_version' "
        "from atomic.events order by load_tstamp"
    ).fetchall()
    assert rows == [(None, None), ("3", "2-0-1")]


def test_the_sink_reopens_its_file_after_reopen_rows_and_loses_nothing(
    tmp_path: Path, fixture_line: str
) -> None:
    """A long-running loader reopens the file now and then (DuckDB's caches grow with the
    table while a connection is open); the batches around a reopen, and a schema that first
    appears after one, land as if nothing happened."""
    db = tmp_path / "w.duckdb"
    sink = DuckDBSink(db, reopen_rows=10)
    first = sink.con
    context = {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
        "data": [{"schema": "iglu:com.acme/late/jsonschema/1-0-0", "data": {"n": 1}}],
    }
    lines = [make_line(fixture_line) for _ in range(24)]
    lines.append(make_line(fixture_line, contexts=json.dumps(context)))
    summary = pipeline.run([parse_line(line) for line in lines], sink, batch_rows=6)
    assert summary.batches == 5 and sink.con is not first
    assert sink.con.execute("select count(*) from atomic.events").fetchone() == (25,)
    sink.close()
    con = duckdb.connect(str(db))
    assert con.execute("select count(distinct event_id) from atomic.events").fetchone() == (25,)
    late = "select count(contexts_com_acme_late_1) from atomic.events"
    assert con.execute(late).fetchone() == (1,)
    con.close()
    bulk = DuckDBSink(db, reopen_rows=10)
    bulk.bulk_load()  # a finite source: no reopen (it would checkpoint early)
    opened = bulk.con
    pipeline.run([parse_line(make_line(fixture_line)) for _ in range(30)], bulk, batch_rows=6)
    assert bulk.con is opened
    bulk.close()


def test_the_streaming_sink_writes_small_row_groups_and_reopens(
    tmp_path: Path, fixture_line: str
) -> None:
    """What a long-running loader process opens (``DuckDBSink.streaming``): the file attached
    with 16,384-row groups, so a checkpoint never compresses a 122,880-row group at once."""
    from loader.sinks.duckdb import ROW_GROUP_ROWS

    db = tmp_path / "w.duckdb"
    sink = DuckDBSink.streaming(db)
    sink.reopen_rows = 20_000
    first = sink.con
    events = [parse_line(make_line(fixture_line)) for _ in range(2000)]
    for _ in range(20):  # 40,000 rows in 10 batches of 4,000 (events repeat: ids do not matter)
        pipeline.run(events, sink, batch_rows=4000)
    assert sink.con is not first  # reopened after 20,000 rows
    sink.close()
    con = duckdb.connect(str(db))
    rows_per_group = con.execute(
        "select row_group_id, sum(count) from pragma_storage_info('atomic.events') "
        "where column_path = '[0]' group by all order by 1"
    ).fetchall()
    assert con.execute("select count(*) from atomic.events").fetchone() == (40_000,)
    assert sum(n for _, n in rows_per_group) == 40_000
    assert max(n for _, n in rows_per_group) <= ROW_GROUP_ROWS  # a plain sink: 36,000 in one
    con.close()


def test_a_value_the_warehouse_rejects_costs_only_that_event(
    tmp_path: Path, fixture_line: str
) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema atomic")
    # A stricter table than the loader's own: the warehouse, not the parser, rejects port 0.
    con.execute(
        EVENTS_DDL.replace("page_urlport BIGINT", "page_urlport BIGINT CHECK (page_urlport > 0)")
    )
    con.close()
    lines = [make_line(fixture_line, page_urlport="0" if i == 5 else "80") for i in range(8)]
    batch = Batch()
    for line in lines:
        batch.add(parse_line(line))
    sink = DuckDBSink(db)
    sink.write(batch)
    sink.close()
    con = duckdb.connect(str(db))
    assert con.execute("select count(*) from atomic.events").fetchone() == (7,)
    error_type, raw = con.execute("select error_type, raw from atomic.failed_events").fetchone()
    assert error_type == "warehouse_rejected"
    assert json.loads(raw)["event_id"] == lines[5].split("\t")[6]


def test_batch_keeps_failed_events_apart(fixture_line: str) -> None:
    batch = Batch()
    batch.add(parse_line(fixture_line))
    batch.add(FailedEvent("x", "t", "m"))
    assert len(batch) == 2
    table = batch.to_arrow()
    assert table.num_rows == 1
    assert "unstruct_event_com_snowplowanalytics_snowplow_link_click_1" in table.column_names


def test_a_locked_warehouse_is_retried_not_turned_into_failed_events(
    tmp_path: Path, fixture_line: str
) -> None:
    """A transient error (here: the sink's transaction conflicts once) is retried by the
    pipeline; no event becomes a failed event for the warehouse's trouble."""
    sink = DuckDBSink(tmp_path / "w.duckdb")
    calls = []
    write = sink.write

    def flaky(batch: Batch) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise TransientSinkError("database is locked")
        write(batch)

    sink.write = flaky  # type: ignore[method-assign]
    summary = pipeline.run([parse_line(make_line(fixture_line)) for _ in range(3)], sink)
    assert (summary.good, summary.failed, calls) == (3, 0, [3, 3])
    count = sink.con.execute("select count(*) from atomic.failed_events").fetchone()
    assert count == (0,)


def test_a_file_another_process_holds_is_a_transient_error_naming_it(
    tmp_path: Path, duckdb_holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    """The loader's message says which process holds the file (as `dbt build`'s does)."""
    db = tmp_path / "w.duckdb"
    holder = duckdb_holder(db)
    with pytest.raises(TransientSinkError) as error:
        DuckDBSink.streaming(db)
    message = str(error.value)
    assert message.startswith(f"cannot open {db}: PID {holder.pid} (")
    assert message.endswith("has it open, and DuckDB allows one writing process per file")


@pytest.mark.parametrize("start", [100, 4096 + 100])
@pytest.mark.parametrize("streaming", [False, True])
def test_a_damaged_file_says_so_and_is_not_retried(tmp_path: Path, start: int,
                                                   streaming: bool) -> None:  # fmt: skip
    """A file with DuckDB's magic whose header or blocks fail their checksums (a file with
    no magic is refused before DuckDB opens it: ``refuse_non_database``): a terminal error
    saying the file is damaged, not "another process may hold it" (which sent its owner
    looking for a process that was not there)."""
    db = tmp_path / "w.duckdb"
    DuckDBSink(db).close()
    data = bytearray(db.read_bytes())
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    db.write_bytes(bytes(data))
    with pytest.raises(TerminalSinkError, match="the file is damaged") as error:
        DuckDBSink.streaming(db) if streaming else DuckDBSink(db)
    assert "another process" not in str(error.value).lower()

"""The column-by-column fast path against the per-line parser: the same rows, the same failed
events (type, message, raw), in the same order, for good, unusual and broken lines."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.batch import Batch
from loader.columnar import Chunk, parse_block
from loader.contract import FIELDS, Kind
from loader.sources.synthetic import SyntheticConfig, generate_lines
from loader.sources.tsv import parse_lines
from tests.conftest import REFERENCE
from tests.loader.paths import RowPaths
from tests.loader.same_batches import assert_same_batches

FIXTURE = (REFERENCE / "enriched-tsv" / "fixture.tsv").read_text().rstrip("\n")
SYNTHETIC = list(generate_lines(SyntheticConfig(users=3, days=2, seed=1)))[:40]
BASES = [FIXTURE, *SYNTHETIC]

# Values worth trying in a field of each kind: valid forms, edge cases, and broken ones.
TSTAMPS = [
    "2026-01-01 00:16:53.176", "2026-01-01T00:16:53", "2026-01-01 00:16:53.123456",
    "2026-01-01 00:16:53.1234567", "2013-11-26T02:03:57.885+02:00", "2026-01-01 00:00:00Z",
    "2026-02-30 00:00:00", "2024-02-29 12:00:00", "2026-01-01 24:00:00", "2026-01-01 23:59:60",
    "0000-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "yesterday",
    "2026-1-1 00:00:00", " 2026-01-01 00:00:00",
]  # fmt: skip
INTS = ["0", "-0", "007", "2147483647", "2147483648", "-2147483648", "-2147483649",
        "9999999999", "99999999999", "12x", "+5", "1.0", " 1"]  # fmt: skip
DOUBLES = ["0", "-0", "1.", ".5", "1e5", "1E-3", "1e400", "-1e400", "1e-400", "nan", "inf",
           "0x10", "1,5", "3.14159265358979323846", "1e1000", "+1", ".", "-"]  # fmt: skip
BOOLS = ["0", "1", "true", "2", " 1"]
STRINGS = ["x", "héllo", "a\rb", "\ufeffbom", "\\t", '"quoted"', "a,b", "null", "NULL", "NaN"]
JSONS = [
    '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[]}',
    '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":['
    '{"schema":"iglu:org.schema/WebPage/jsonschema/1-0-1","data":{"genre":"x","n":1.5e3}},'
    '{"schema":"iglu:com.acme/thing/jsonschema/2-0-0","data":{"_schema_version":"mine"}}]}',
    '{"schema":"iglu:x/y/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/evt/jsonschema/1-2-3",'
    '"data":{"a":[1,2,{"b":null}]}}}',
    '{"data": 3}', '{"schema": "iglu:x/y/jsonschema/1-0-0", "data": [}', "[]", "null", "3",
    '{"data":[{"schema":"not-iglu","data":{}}]}', '{"data":[{"schema":"iglu:a/b/c/1-0-0"}]}',
    '{"data":{"schema":"iglu:a/b/jsonschema/1-0-0","data":[]}}', '{"data":[1]}',
    '{"data":{"schema":"iglu:a/b/jsonschema/1-0-0","data":{"k":"v","k":"w"}}}',
]  # fmt: skip
BY_KIND = {Kind.TSTAMP: TSTAMPS, Kind.INT: INTS, Kind.DOUBLE: DOUBLES, Kind.BOOL: BOOLS,
           Kind.STRING: STRINGS, Kind.CONTEXTS: JSONS, Kind.UNSTRUCT: JSONS}  # fmt: skip


@st.composite
def lines(draw: st.DrawFn) -> str:
    values = draw(st.sampled_from(BASES)).split("\t")
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(FIELDS) - 1))
        values[i] = draw(
            st.one_of(
                st.sampled_from(BY_KIND[FIELDS[i].kind]),
                st.sampled_from(["", "\t", "\n"]),
                st.text(max_size=12),
            )
        )
    line = "\t".join(values)
    return draw(st.sampled_from([line, line, line, line + "\r", "", "broken line", line[:50]]))


def both_ways(data: bytes) -> tuple[Batch, Batch]:
    fast, slow = Batch(), Batch()
    chunk = parse_block(data, "test")
    assert isinstance(chunk, Chunk)
    fast.add(chunk)
    for item in parse_lines(data.split(b"\n"), "test"):
        slow.add(item)
    return fast, slow


def assert_same(data: bytes) -> None:
    assert_same_batches(*both_ways(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines(), min_size=1, max_size=8))
def test_fast_path_equals_per_line_parser(generated: list[str]) -> None:
    assert_same(("\n".join(generated) + "\n").encode())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(BASES), min_size=1, max_size=6), st.binary(max_size=6))
def test_bytes_that_are_not_utf8_or_not_lines(picked: list[str], junk: bytes) -> None:
    data = "\n".join(picked).encode()
    assert_same(data + b"\n" + junk + b"\n" + data + b"\n")
    assert_same(data)  # no final newline


def test_byte_order_marks_and_carriage_returns_where_pyarrow_would_treat_them_apart() -> None:
    bom = "\ufeff" + FIXTURE
    assert_same(f"{bom}\n{FIXTURE}\n".encode())
    assert_same(f"\n{bom}\n{FIXTURE}\n".encode())  # not first in the block, but first fast line
    assert_same(f"{FIXTURE}\r\n{FIXTURE}\r\n".encode())
    assert_same(f"{FIXTURE}\n\n\n{FIXTURE}".encode())


def test_values_arrow_would_cast_but_the_per_line_parser_refuses() -> None:
    fields = [f.name for f in FIELDS]
    for name, value in [("etl_tstamp", "0000-01-01 00:00:00"), ("txn_id", "2147483648"),
                        ("geo_latitude", "1e400"), ("br_cookies", "true")]:  # fmt: skip
        values = FIXTURE.split("\t")
        values[fields.index(name)] = value
        assert_same(("\t".join(values) + "\n" + FIXTURE + "\n").encode())


def test_a_schema_in_contexts_and_derived_contexts_then_a_row_with_neither() -> None:
    """Both fields of the first line hold a WebPage entity (one column, joined), the second line
    holds none: a join that drops the all-null last row would make the arrays' lengths differ
    (pyarrow 26's binary_join_element_wise with null_handling="skip" does)."""
    fields = [f.name for f in FIELDS]
    both = FIXTURE.split("\t")
    both[fields.index("derived_contexts")] = JSONS[1]  # has an org.schema/WebPage entity too
    neither = FIXTURE.split("\t")
    neither[fields.index("contexts")] = ""
    neither[fields.index("derived_contexts")] = ""
    assert_same(("\t".join(both) + "\n" + "\t".join(neither) + "\n").encode())
    chunk = parse_block(("\t".join(both) + "\n" + "\t".join(neither) + "\n").encode())
    assert chunk.table.num_rows == 2 and not chunk.failed


def test_synthetic_stream_takes_the_fast_path_whole() -> None:
    data = ("\n".join(SYNTHETIC) + "\n").encode()
    assert_same(data)
    with RowPaths() as paths:
        chunk = parse_block(data)
    assert chunk.table.num_rows == len(SYNTHETIC) and not chunk.failed
    assert (paths.fast, paths.slow) == (len(SYNTHETIC), 0)


def test_rows_the_fast_path_is_not_sure_of_are_counted_slow() -> None:
    data = ("\n".join([*SYNTHETIC, "broken", *SYNTHETIC]) + "\n").encode()
    with RowPaths() as paths:
        chunk = parse_block(data)
    assert chunk.table.num_rows == 2 * len(SYNTHETIC) and len(chunk.failed) == 1
    assert (paths.fast, paths.slow) == (2 * len(SYNTHETIC), 1)


def test_a_file_is_loaded_by_the_fast_path(tmp_path) -> None:
    """``file:`` end to end: every row of a clean file typed column by column."""
    from loader import pipeline
    from loader.sinks.duckdb import DuckDBSink
    from loader.sources.tsv import TsvFileSource

    path = tmp_path / "events.tsv"
    path.write_text("\n".join(SYNTHETIC) + "\n")
    sink = DuckDBSink(str(tmp_path / "w.duckdb"))
    with RowPaths() as paths:
        summary = pipeline.run(TsvFileSource(str(path)), sink, batch_rows=7)
    sink.close()
    assert summary.good == len(SYNTHETIC)
    assert (paths.fast, paths.slow) == (len(SYNTHETIC), 0)


def test_a_chunk_splits_where_items_fall() -> None:
    lines_ = [FIXTURE, "broken", FIXTURE, FIXTURE, "also broken", FIXTURE]
    chunk = parse_block(("\n".join(lines_) + "\n").encode())
    head, tail = chunk.split(3)
    assert (head.table.num_rows, len(head.failed)) == (2, 1)
    assert (tail.table.num_rows, len(tail.failed)) == (2, 1)
    assert tail.good_items.to_pylist() == [0, 2] and tail.failed_items == [1]

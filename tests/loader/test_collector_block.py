"""The collector's block path (``to_chunk``: enrich each record, type the block column by
column) against the per-record path (``to_event``): the same rows and the same failed events
(type, message, raw), in the same order, for any spooled records."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loader.batch import Batch
from loader.enrich import EnrichConfig
from loader.sources.collector import records as collector
from loader.sources.collector import to_chunk, to_event
from tests.loader.paths import RowPaths
from tests.loader.same_batches import assert_same_batches
from tests.loader.test_enrich import EID, PARAMS, VALUES

CFG = EnrichConfig()
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
GOOD = {"e": "pv", "eid": EID, "dtm": "1767261600000", "url": "https://shop.example.com/p/1?x=1"}

payloads = st.one_of(
    st.just(GOOD),
    st.dictionaries(PARAMS, VALUES, max_size=8).map(lambda p: {"e": "pv", "eid": EID} | p),
    st.dictionaries(PARAMS, VALUES, max_size=8),
    st.dictionaries(PARAMS, st.sampled_from(["a\tb", "a\nb", "", " ", "\r"]), max_size=4).map(
        lambda p: GOOD | p
    ),
)
records = st.one_of(
    st.builds(
        lambda p, ua, t: {"t": t, "ip": "203.0.113.7", "ua": ua, "nuid": "n-1", "p": p},
        payloads,
        st.sampled_from(["", CHROME, "Googlebot/2.1 (+http://www.google.com/bot.html)", "x\ty"]),
        st.integers(0, 4_102_444_800_000),
    ),
    st.just({"t": 1767261600000, "bad": "{not json", "error": "not a payload_data batch"}),
    st.just({"t": "yesterday", "p": GOOD}),  # not a spool record: an enrichment error
    st.just({"t": 1767261600000, "p": ["not", "a", "dict"]}),
)


def assert_same(spooled: list[dict]) -> None:
    fast, slow = Batch(), Batch()
    fast.add(to_chunk(spooled, CFG, "test"))
    for record in spooled:
        slow.add(to_event(record, CFG, "test"))
    # etl_tstamp is the clock at enrichment: once per block on one path, per event on the other
    assert_same_batches(fast, slow, clock_columns=("etl_tstamp",))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=10))
@example([{"t": 1767261600000, "ip": "", "ua": "", "nuid": "", "p": GOOD | {"vp": "1x"}}])
@example([{"t": 1767261600000, "ip": "", "ua": "", "nuid": "", "p": GOOD | {"tid": "1.5"}}])
def test_block_path_equals_per_record_path(spooled: list[dict]) -> None:
    assert_same(spooled)


def test_a_block_of_tracker_events_takes_the_fast_path_whole() -> None:
    spooled = [
        {"t": 1767261600000 + i, "ip": "203.0.113.7", "ua": CHROME, "nuid": "n-1",
         "p": GOOD | {"eid": f"{i:08d}-b53a-4b13-a233-0088f79dcbcb", "res": "1920x1080"}}
        for i in range(50)
    ]  # fmt: skip
    assert_same(spooled)
    with RowPaths() as paths:
        chunk = to_chunk(spooled, CFG, "test")
    assert chunk.table.num_rows == 50 and not chunk.failed
    assert (paths.fast, paths.slow) == (50, 0), "the block path typed some rows one by one"
    assert chunk.good_items.to_pylist() == list(range(50))
    assert chunk.table.column("dvce_screenwidth").to_pylist() == [1920] * 50
    ua = chunk.table.column("contexts_com_snowplowanalytics_snowplow_ua_parser_context_1")
    assert isinstance(ua, pa.ChunkedArray) and ua.null_count == 0


def test_a_bug_in_the_block_path_falls_back_to_record_by_record(monkeypatch) -> None:
    """A block that cannot be typed must not wedge the loader (it would meet the same records
    after every restart): the records are enriched one by one instead."""

    spooled = [{"t": 1767261600000, "ip": "", "ua": CHROME, "nuid": "", "p": GOOD},
               {"t": 1767261600000, "bad": "{", "error": "not a payload_data batch"}]  # fmt: skip
    real = collector.parse_rows
    calls: list[int] = []

    def first_call_fails(*args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the block path")
        return real(*args)

    monkeypatch.setattr(collector, "parse_rows", first_call_fails)
    with RowPaths() as paths:
        chunk = to_chunk(spooled, CFG, "test")
    assert (paths.fast, paths.slow) == (0, 2)  # the fallback is counted: a metric shows it
    assert len(calls) == 2 and chunk.table.num_rows == 1 and len(chunk.failed) == 1
    assert chunk.table.column("event_id").to_pylist() == [EID]
    assert chunk.good_items.to_pylist() == [0] and chunk.failed_items == [1]

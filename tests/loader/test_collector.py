"""The collector as a user runs it: `python -m loader --source http://127.0.0.1:PORT` in its own
process, the real Snowplow Python tracker as the client, a real DuckDB file."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
import uuid
from pathlib import Path

import requests
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PagePing, PageView, SelfDescribing

from tests.loader.live_collector import Collector

WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
CHECKOUT = "iglu:com.acme/checkout_step/jsonschema/1-0-2"


def test_real_python_tracker_events_arrive_once_with_their_fields(collector: Collector) -> None:
    page_view_id = str(uuid.uuid4())
    browser = requests.Session()  # keeps the collector's sp cookie, as a browser would
    emitter = Emitter("127.0.0.1", protocol="http", port=collector.port, method="post",
                      batch_size=3, session=browser)  # fmt: skip
    subject = (
        Subject().set_user_id("jane@example.com").set_lang("de-DE").set_screen_resolution(1280, 800)
    )
    tracker = Tracker("pytest", emitter, subject=subject, app_id="shop")
    web_page = [SelfDescribingJson(WEB_PAGE, {"id": page_view_id})]
    tracker.track(PageView(page_url="https://shop.example.com/p/1?utm_source=news&utm_medium=email",
                           page_title="Boots", referrer="https://www.google.com/search?q=boots",
                           context=web_page))  # fmt: skip
    for y in (100, 400):
        tracker.track(PagePing(page_url="https://shop.example.com/p/1", min_x=0, max_x=0,
                               min_y=0, max_y=y, context=web_page))  # fmt: skip
    tracker.track(SelfDescribing(SelfDescribingJson(CHECKOUT, {"step": 2}), context=web_page))
    tracker.flush()
    ok_get = Emitter("127.0.0.1", protocol="http", port=collector.port, method="get")
    Tracker("pytest-get", ok_get, app_id="shop").track(
        PageView(page_url="https://shop.example.com/")
    )
    ok_get.flush()
    out = collector.stop()
    assert "loaded 5 events (0 failed)" in out
    rows = collector.query(
        "select event, event_name, app_id, user_id, br_lang, dvce_screenwidth, page_urlhost, "
        "page_urlpath, mkt_medium, refr_medium, refr_term, pp_yoffset_max, network_userid, "
        "contexts_com_snowplowanalytics_snowplow_web_page_1->>'$[0].id', v_collector "
        "from atomic.events order by dvce_created_tstamp"
    )
    assert [r[:2] for r in rows] == [
        ("page_view", "page_view"), ("page_ping", "page_ping"), ("page_ping", "page_ping"),
        ("unstruct", "checkout_step"), ("page_view", "page_view"),
    ]  # fmt: skip
    first = rows[0]
    assert first[2:12] == ("shop", "jane@example.com", "de-DE", 1280, "shop.example.com", "/p/1",
                           "email", "search", "boots", None)  # fmt: skip
    assert [r[11] for r in rows[1:3]] == [100, 400]
    assert {r[13] for r in rows[:4]} == {page_view_id}
    # the sp cookie: one network_userid for the session that kept it, another for a new client
    assert rows[0][12] == rows[3][12] == browser.cookies["sp"] != rows[4][12]
    assert collector.query("select count(distinct event_id), count(*) from atomic.events") == [
        (5, 5)
    ]
    step = collector.query(
        "select unstruct_event_com_acme_checkout_step_1->>'step' from atomic.events "
        "where event = 'unstruct'"
    )
    assert step == [("2",)]


def test_bad_input_becomes_failed_events_and_the_collector_stays_up(collector: Collector) -> None:
    tp2 = f"{collector.url}/com.snowplowanalytics.snowplow/tp2"
    assert requests.post(tp2, data=b"{not json", timeout=5).status_code == 200
    assert requests.post(tp2, json={"data": [{"e": "pv"}]}, timeout=5).status_code == 200  # no eid
    assert requests.post(
        tp2, json={"data": [{"e": "nope", "eid": str(uuid.uuid4())}]}, timeout=5
    ).ok
    assert requests.post(tp2, data=b"x" * 2_000_000, timeout=5).status_code == 413
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as raw:
        # a declared 5 MB body is refused before a byte of it is read into memory
        raw.sendall(b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 5000000\r\n\r\n")  # fmt: skip
        assert raw.recv(100).startswith(b"HTTP/1.1 413")
    preflight = requests.options(tp2, headers={"Origin": "https://shop.example.com"}, timeout=5)
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert requests.get(f"{collector.url}/health", timeout=5).ok
    deadline = time.monotonic() + 10  # until a batch commit (--batch-seconds 0.2)
    while time.monotonic() < deadline:
        metrics = requests.get(f"{collector.url}/metrics", timeout=5).text
        if "persona_spool_pending_bytes 0" in metrics:
            break
        time.sleep(0.1)
    assert 'persona_events_total{status="failed"} 3' in metrics
    assert 'persona_collector_requests_total{status="accepted"} 3' in metrics
    assert 'persona_collector_requests_total{status="refused"} 2' in metrics  # the two 413s
    assert_prometheus_text(metrics)
    assert "persona_spool_pending_bytes 0" in metrics
    # one fsync per group commit, at most one per accepted request, counted in a histogram
    buckets = [int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("persona_spool_fsync_seconds_bucket")]  # fmt: skip
    assert 1 <= buckets[-1] <= 3 and buckets == sorted(buckets)
    assert f"persona_spool_fsync_seconds_count {buckets[-1]}" in metrics
    collector.stop()
    failed = collector.query(
        "select error_type, message from atomic.failed_events order by message"
    )
    assert [f[0] for f in failed] == ["invalid_payload", "missing_field", "invalid_payload"]
    assert "unknown event type 'nope'" in failed[0][1]
    assert "not a payload_data batch" in failed[2][1]


NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(
    rf'({NAME})(?:\{{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\}})? (\S+)'
)


def assert_prometheus_text(text: str) -> None:
    """Prometheus' text format 0.0.4, strictly (prometheus_client is not installed here):
    every family has one non-empty ``# HELP`` and one ``# TYPE`` before its samples, which
    follow together; names, labels and values parse; a histogram's buckets add up."""
    assert text.endswith("\n") and "\n\n" not in text
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: dict[str, list[tuple[str, str, float]]] = {}
    family = ""
    for line in text.splitlines():
        if line.startswith("#"):
            comment = re.fullmatch(rf"# (HELP|TYPE) ({NAME}) (.+)", line)
            assert comment, f"not a HELP or TYPE line: {line}"
            kind, name, rest = comment.groups()
            seen = helps if kind == "HELP" else types
            assert name not in seen and name not in samples, f"{kind} repeated or late: {line}"
            seen[name] = rest
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
            family = name
            continue
        sample = SAMPLE.fullmatch(line)
        assert sample, f"not a sample: {line}"
        name, labels, value = sample.groups()
        suffixes = ("_bucket", "_sum", "_count") if types.get(family) == "histogram" else ("",)
        assert name in {family + s for s in suffixes}, f"sample outside its family: {line}"
        samples.setdefault(family, []).append((name, labels or "", float(value)))
    assert set(helps) == set(types) == set(samples), (helps.keys(), types.keys(), samples.keys())
    assert all(h.strip() for h in helps.values())
    for name, kind in types.items():
        if kind == "histogram":
            buckets = [(labels, v) for n, labels, v in samples[name] if n.endswith("_bucket")]
            assert buckets[-1][0] == 'le="+Inf"'
            assert [v for _, v in buckets] == sorted(v for _, v in buckets)
            count = [v for n, _, v in samples[name] if n.endswith("_count")]
            assert count == [buckets[-1][1]]


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Kill the loader repeatedly while a client streams; every acknowledged event is loaded."""
    collector = Collector(tmp_path)
    acknowledged: list[str] = []
    tp2 = lambda: f"{collector.url}/com.snowplowanalytics.snowplow/tp2"  # noqa: E731
    for _round in range(3):
        collector.start()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            ids = [str(uuid.uuid4()) for _ in range(20)]
            now = str(int(time.time() * 1000))
            body = {
                "data": [
                    {"e": "pv", "eid": i, "dtm": now, "stm": now, "url": "https://x.example/"}
                    for i in ids
                ]
            }
            if requests.post(tp2(), json=body, timeout=5).status_code == 200:
                acknowledged.extend(ids)
        collector.stop(signal.SIGKILL)
    collector.start()
    time.sleep(1)
    collector.stop()
    loaded = {r[0] for r in collector.query("select event_id from atomic.events")}
    assert len(acknowledged) > 100
    assert set(acknowledged) <= loaded


def test_a_stalled_loader_makes_the_collector_answer_503_then_recover(
    unstarted_collector: Collector,
) -> None:
    """Backpressure end to end: the loader process stops (SIGSTOP, as a stuck warehouse would
    stop it), the spool fills to --spool-max-bytes, the HTTP process answers 503 with a log
    line, and once the loader resumes everything acknowledged is loaded once, nothing refused
    is, and requests are accepted again."""
    collector = unstarted_collector
    collector.start("--spool-max-bytes", "20000")
    assert collector.proc is not None
    tp2 = f"{collector.url}/com.snowplowanalytics.snowplow/tp2"

    def post() -> tuple[int, list[str]]:
        ids = [str(uuid.uuid4()) for _ in range(10)]
        body = {"data": [{"e": "pv", "eid": i, "url": "https://a.example/" + "x" * 200}
                         for i in ids]}  # fmt: skip
        return requests.post(tp2, json=body, timeout=10).status_code, ids

    accepted: list[str] = []
    refused: list[str] = []
    os.kill(collector.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(100):
            status, ids = post()
            if status == 503:
                refused += ids
                break
            assert status == 200
            accepted += ids
    finally:
        os.kill(collector.proc.pid, signal.SIGCONT)
    assert refused, "the spool grew past its limit without a 503"
    assert 10 <= len(accepted) <= 200  # about 20 KB of spooled records
    deadline = time.monotonic() + 30
    while True:  # the loader catches up, the checkpoint moves, the collector accepts again
        status, ids = post()
        if status == 200:
            accepted += ids
            break
        assert status == 503 and time.monotonic() < deadline
        time.sleep(0.2)
    logs = collector.stop_and_logs()
    assert "backpressure: answering 503" in logs and "not keeping up" in logs
    loaded = {r[0] for r in collector.query("select event_id from atomic.events")}
    assert loaded == set(accepted)
    assert collector.query("select count(*) from atomic.events") == [(len(accepted),)]


def test_a_batch_ends_at_its_row_limit(unstarted_collector: Collector) -> None:
    """Spooled records are enriched in blocks, but a block never takes more than the open
    batch can hold: 30 events in one request with --batch-rows 7 are 5 commits."""
    collector = unstarted_collector
    collector.start("--batch-rows", "7", "--batch-seconds", "30")
    body = {"data": [{"e": "pv", "eid": str(uuid.uuid4())} for _ in range(30)]}
    tp2 = f"{collector.url}/com.snowplowanalytics.snowplow/tp2"
    assert requests.post(tp2, json=body, timeout=10).ok
    deadline = time.monotonic() + 20
    while "persona_batches_total 4" not in requests.get(f"{collector.url}/metrics").text:
        assert time.monotonic() < deadline, "4 full batches of 7 were not committed"
        time.sleep(0.1)
    # the loader's count at /metrics: the spooled records took the block path
    metrics = requests.get(f"{collector.url}/metrics", timeout=5).text
    fast = re.search(r'persona_rows_total\{path="fast"\} (\d+)', metrics)
    assert fast is not None and int(fast[1]) >= 28, metrics
    assert 'persona_rows_total{path="slow"} 0' in metrics
    summary = collector.stop()  # the last 2 events are committed on SIGTERM
    assert "loaded 30 events (0 failed) in 5 batches" in summary
    sizes = collector.query(
        "select count(*) from atomic.events group by load_tstamp order by min(load_tstamp)"
    )
    assert sizes == [(7,), (7,), (7,), (7,), (2,)]


def test_a_dead_http_process_is_started_again_and_then_the_loader_gives_up(
    unstarted_collector: Collector,
) -> None:
    """kill -9 of the HTTP process: the loader starts another, which accepts requests (no
    acknowledged event lost); with --collector-restarts 2, the third death in a row stops the
    loader with an error, once what was acknowledged is loaded."""
    collector = unstarted_collector
    collector.start("--collector-restarts", "2")
    assert collector.proc is not None
    tp2 = f"{collector.url}/com.snowplowanalytics.snowplow/tp2"
    acknowledged: list[str] = []

    def post() -> None:
        ids = [str(uuid.uuid4()) for _ in range(5)]
        assert requests.post(tp2, json={"data": [{"e": "pv", "eid": i} for i in ids]}, timeout=5).ok
        acknowledged.extend(ids)

    for death in (1, 2):
        post()
        pid = collector.http_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # a new HTTP process takes the lock, then the port
            assert time.monotonic() < deadline, f"no new HTTP process after death {death}"
            with contextlib.suppress(requests.ConnectionError, ValueError, KeyError):
                if collector.http_pid() != pid and requests.get(collector.url + "/health").ok:
                    break
            time.sleep(0.1)
        post()
    assert "persona_collector_restarts_total 2" in requests.get(collector.url + "/metrics").text
    os.kill(collector.http_pid(), signal.SIGKILL)
    out, err = collector.proc.communicate(timeout=60)
    assert collector.proc.returncode == 2, err
    assert "error: the collector's HTTP process on" in err and "died 3 times in a row" in err
    assert err.count("starting it again in") == 2
    assert f"loaded {len(acknowledged)} events (0 failed)" in out
    loaded = [r[0] for r in collector.query("select event_id from atomic.events")]
    assert sorted(loaded) == sorted(acknowledged)


def test_a_second_collector_on_the_same_spool_fails_at_once_naming_the_first(
    unstarted_collector: Collector, tmp_path: Path
) -> None:
    """The spool's writer lock is held by the first collector's HTTP process: a second loader
    on the same spool (it waited 75 s, then said 'could not listen') exits within seconds,
    naming the spool and the processes that hold it; the first keeps serving."""
    first = unstarted_collector
    first.start()
    assert first.proc is not None
    (tmp_path / "second").mkdir()
    second = Collector(tmp_path / "second")  # its own warehouse file, the first's spool
    second.spool = first.spool
    started = time.monotonic()
    second.launch()
    assert second.proc is not None
    try:
        _, err = second.proc.communicate(timeout=30)
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert second.proc.returncode == 2 and time.monotonic() - started < 15
    assert (
        f"error: the spool {first.spool} is in use by another collector (process "
        f"{first.http_pid()}, started by loader process {first.proc.pid})"
    ) in err
    assert requests.get(f"{first.url}/health", timeout=5).ok
    first.stop()

"""Hostile HTTP input against a live collector process on 127.0.0.1: raw sockets, so that the
bytes on the wire are exactly the hostile ones. Each request must get a sane status (never a
5xx, never a hang), the collector must answer ``/health`` after each, bad events must land in
``atomic.failed_events`` with the raw input and a reason, and good ones must still load.

test_collector.py covers a non-JSON body, a missing event id, an unknown event type, an
oversized body and a declared oversized length; test_enrich.py fuzzes payload fields. This file
covers the HTTP layer around them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import socket
import time
import uuid

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.loader.live_collector import Collector

TP2 = b"/com.snowplowanalytics.snowplow/tp2"
SANE = {200, 400, 404, 405, 413, 414, 431}


def send(collector: Collector, data: bytes, timeout: float = 5.0) -> int:
    """Send raw bytes, return the response's status code (0: closed with no response, -1: no
    answer yet, the server waiting for the rest of a request the client declared longer)."""
    with socket.create_connection(("127.0.0.1", collector.port), timeout=timeout) as s:
        # refused mid-send (a huge request): the status may still be readable
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        head = b""
        try:
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            return -1
    if not head:
        return 0
    version, status, *_ = head.split(b" ", 2)
    assert version.startswith(b"HTTP/1."), head[:100]
    return int(status)


def healthy(collector: Collector) -> bool:
    return send(collector, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 200


def post(body: bytes, content_type: bytes = b"application/json", extra: bytes = b"") -> bytes:
    return (b"POST " + TP2 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
            + content_type + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            + extra + b"\r\n" + body)  # fmt: skip


def get(query: bytes, extra: bytes = b"") -> bytes:
    return b"GET /i?" + query + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n"


def b64(value: object) -> bytes:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")


def pv(eid: str, **more: str) -> dict[str, str]:
    return {"e": "pv", "eid": eid, "url": "https://shop.example.com/", **more}


def test_hostile_requests_get_sane_answers_and_bad_events_are_kept(
    collector: Collector,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(6)]
    checkout = {"schema": "iglu:com.acme/checkout_step/jsonschema/1-0-2", "data": {}}
    ue = b64({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
              "data": checkout})  # fmt: skip
    corpus: list[tuple[str, bytes, int | tuple[int, ...]]] = [
        # content types: the body decides, as for Snowplow's collector
        ("json as text/plain", post(orjson.dumps({"data": [pv(ids[0])]}), b"text/plain"), 200),
        ("form content type", post(b"a=1&b=2", b"application/x-www-form-urlencoded"), 200),
        ("multipart", post(b"--x\r\n\r\n--x--", b"multipart/form-data; boundary=x"), 200),
        # truncated and invalid JSON
        ("truncated json", post(b'{"schema":"s","data":[{"e":"pv","eid":"'), 200),
        ("data is not a list", post(b'{"data":{"e":"pv"}}'), 200),
        ("data of non-objects", post(b'{"data":[1,"x",null]}'), 200),
        ("nested too deep", post(b"[" * 5000 + b"]" * 5000), 200),
        ("nul and non-UTF-8 body", post(b'{"data":[{"e":"pv\x00\xff\xfe"}]}'), 200),
        # invalid base64 in ue_px and cx, by GET and by POST
        ("ue_px not base64", get(b"e=ue&eid=" + ids[1].encode() + b"&ue_px=%25%25%25"), 200),
        ("cx not base64", post(orjson.dumps({"data": [pv(ids[2], cx="!!not base64!!")]})), 200),
        ("ue_px not JSON", get(b"e=ue&eid=" + ids[3].encode() + b"&ue_px=bm90IGpzb24"), 200),
        ("a good ue_px", get(b"e=ue&eid=" + ids[4].encode() + b"&ue_px=" + ue), 200),
        # huge query strings and headers: refused before they reach the spool
        ("query over 32 KiB", get(b"e=pv&url=" + b"a" * 40_000), 414),
        ("headers over 64 KiB", get(b"e=pv", b"X-Pad: " + b"a" * 70_000 + b"\r\n"), 431),
        (
            "3000 headers",
            get(b"e=pv", b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(3000))),
            431,
        ),
        (
            "request line of 20 MB",
            get(b"e=pv&url=" + b"a" * 20_000_000),
            (400, 0),
        ),  # 0: reset mid-send
        # header abuse
        ("two content lengths", post(b"{}", extra=b"Content-Length: 9\r\n"), 400),
        ("negative content length", post(b"{}").replace(b"Length: 2", b"Length: -1"), 400),
        (
            "non-UTF-8 user agent",
            get(b"e=pv&eid=" + ids[5].encode(), b"User-Agent: \xff\xfe\r\n"),
            200,
        ),
        (
            "forged sp cookie",
            get(
                b"e=pv&eid=" + str(uuid.uuid4()).encode(),
                b"Cookie: sp=<script>" + b"z" * 5000 + b"\r\n",
            ),
            200,
        ),
        ("raw non-UTF-8 in the target", get(b"e=pv&url=\xff\xfe"), 400),
        (
            "percent-encoded non-UTF-8",
            get(b"e=pv&eid=" + str(uuid.uuid4()).encode() + b"&url=https%3A%2F%2Fa%2F%FF%FE"),
            200,
        ),
        ("not HTTP at all", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, 400),
        ("wrong method", b"PUT /i HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        ("unknown path", b"GET /wp-admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (
            "chunked past the limit",
            b"POST " + TP2 + b" HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + (b"80000\r\n" + b"a" * 0x80000 + b"\r\n") * 3
            + b"0\r\n\r\n",
            413,
        ),
    ]
    for name, request, expected in corpus:
        status = send(collector, request, timeout=10)
        assert status in (expected if isinstance(expected, tuple) else (expected,)), (name, status)
        assert healthy(collector), f"the collector stopped answering after: {name}"

    collector.stop()
    loaded = dict(collector.query("select event_id, network_userid from atomic.events"))
    # good events arrive despite their hostile wrapping; the forged cookie was replaced
    assert {ids[0], ids[4], ids[5]} <= set(loaded)
    assert all(len(n) == 36 for n in loaded.values())
    # header bytes that are not UTF-8 are read as Latin-1, as HTTP defines them
    ua = collector.query(f"select useragent from atomic.events where event_id = '{ids[5]}'")
    assert ua == [("ÿþ",)]
    failed = collector.query(
        "select error_type, message, raw from atomic.failed_events order by failed_at"
    )
    assert len(failed) == 10, failed
    reasons = [(f[0], f[1]) for f in failed]
    raws = [f[2] for f in failed]
    # each bad body is kept whole, with the reason
    assert raws[:4] == [
        "a=1&b=2", "--x\r\n\r\n--x--", '{"schema":"s","data":[{"e":"pv","eid":"',
        '{"data":{"e":"pv"}}',
    ]  # fmt: skip
    assert all(t == "invalid_payload" and "not a payload_data batch" in m for t, m in reasons[:7])
    assert "unexpected end of data" in reasons[2][1]
    assert "data must be a list of objects" in reasons[3][1] and reasons[3][1] == reasons[4][1]
    assert "depth limit exceeded" in reasons[5][1] and len(raws[5]) == 10_000
    assert raws[6] == '{"data":[{"e":"pv\x00\\xff\\xfe"}]}'  # undecodable bytes escaped, kept
    # events with bad base64 or JSON inside: the tracker payload kept, the field named
    by_id = {json.loads(r)["payload"]["eid"]: (t, m) for t, m, r in failed[7:]}
    assert by_id[ids[1]][0] == by_id[ids[2]][0] == "invalid_payload"
    assert "cx/ue_px: not base64url" in by_id[ids[1]][1]
    assert "cx/ue_px: not base64url" in by_id[ids[2]][1]
    assert by_id[ids[3]][0] == "invalid_json" and "not a self-describing event" in by_id[ids[3]][1]


def test_slow_and_abandoned_requests_do_not_block_the_collector(collector: Collector) -> None:
    """Slowloris, bounded: 50 connections that send half a request head and stall, and one
    that sends half a body and hangs up. Others are served meanwhile; the half body is never
    acknowledged, so it is not spooled (the tracker retries it)."""
    stalled = []
    try:
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", collector.port), timeout=5)
            s.sendall(b"GET /i?e=pv&eid=%d HTTP/1.1\r\nHost: x\r\nX-Slow: " % i)
            stalled.append(s)
        half = socket.create_connection(("127.0.0.1", collector.port), timeout=5)
        half.sendall(post(orjson.dumps({"data": [pv(str(uuid.uuid4()))]}))[:-10])
        started = time.monotonic()
        assert healthy(collector)
        good = str(uuid.uuid4())
        assert send(collector, post(orjson.dumps({"data": [pv(good)]}))) == 200
        assert time.monotonic() - started < 5
        half.close()
    finally:
        for s in stalled:
            s.close()
    assert healthy(collector)
    collector.stop()
    assert collector.query("select event_id from atomic.events") == [(good,)]
    assert collector.query("select count(*) from atomic.failed_events") == [(0,)]


TOKENS = st.sampled_from([b"GET", b"POST", b"OPTIONS", b"HEAD", b"PUT", b"\x00", b"G ET"])
PATHS = st.sampled_from([b"/i", TP2, b"/health", b"/", b"//i", b"/i/../i", b"*", b"/\xff"])
HEADER_NAMES = st.sampled_from(
    [b"Content-Length", b"Content-Type", b"Cookie", b"Transfer-Encoding", b"User-Agent",
     b"SP-Anonymous", b"Origin", b"X-Forwarded-For", b"Host", b"Expect", b"X"]
)  # fmt: skip
HEADER_VALUES = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.sampled_from([b"0", b"-1", b"99999999999", b"chunked", b"sp=x", b"100-continue", b""]),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda p: orjson.dumps({"data": p}),
              st.lists(st.dictionaries(st.sampled_from(["e", "eid", "url", "ue_px", "cx", "dtm"]),
                                       st.text(max_size=20), max_size=4), max_size=3)),
)  # fmt: skip


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    query = (
        draw(st.binary(max_size=60)).replace(b" ", b"%20").replace(b"\r", b"").replace(b"\n", b"")
    )
    target = draw(PATHS) + (b"?" + query if draw(st.booleans()) else b"")
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b""]))
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6))
    body = draw(BODIES)
    head = b" ".join(x for x in (draw(TOKENS), target, version) if x) + b"\r\n"
    head += b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    if draw(st.booleans()):  # usually a body that matches its declared length
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"Connection: close\r\n\r\n" + body


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=raw_requests())
def test_any_raw_request_gets_a_sane_answer(collector: Collector, request: bytes) -> None:
    """One collector serves every example; it must never answer 5xx nor stop answering."""
    status = send(collector, request, timeout=2)
    assert status in SANE | {0, -1}, status
    assert healthy(collector)


def test_x_forwarded_for_counts_only_with_trust_forwarded_for(
    unstarted_collector: Collector,
) -> None:
    """A client on 127.0.0.1 is not a proxy unless the user says so: its X-Forwarded-For is
    ignored by default (uvicorn's own default would honour it) and taken with the flag."""
    collector = unstarted_collector
    forged = b"X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n"
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for eid, flags in zip(ids, [(), ("--trust-forwarded-for",)], strict=True):
        collector.start(*flags)
        assert send(collector, get(b"e=pv&eid=" + eid.encode(), forged)) == 200
        collector.stop()
    stored = dict(collector.query("select event_id, user_ipaddress from atomic.events"))
    # --anonymize-ip-octets 1 (the default) blanks the last octet
    assert stored == {ids[0]: "127.0.0.x", ids[1]: "203.0.113.x"}


def answers(
    socks: list[socket.socket], feed: bytes, seconds: float
) -> dict[int, tuple[float, bytes]]:
    """Send each socket ``feed`` a byte every 0.1 s (a slowloris; nothing if empty) for at most
    ``seconds``; return, per socket index, when the collector answered or closed it and what
    it said (b"": closed without a word). Sockets never answered are missing."""
    got: dict[int, tuple[float, bytes]] = {}
    started = time.monotonic()
    for step in range(int(seconds * 10)):
        readable = set(select.select(socks, [], [], 0)[0])
        for i, s in enumerate(socks):
            if i in got:
                continue
            if s in readable:
                try:
                    got[i] = (time.monotonic() - started, s.recv(4096))
                except ConnectionResetError:
                    got[i] = (time.monotonic() - started, b"")
            elif step < len(feed):
                with contextlib.suppress(OSError):
                    s.send(feed[step : step + 1])
        if len(got) == len(socks):
            break
        time.sleep(0.1)
    return got


def test_slow_idle_and_half_sent_requests_are_closed_after_their_timeouts(
    unstarted_collector: Collector,
) -> None:
    """A request head trickling in a byte at a time, a connection that sends nothing, a body
    cut short and a kept-alive connection left idle are each closed after their timeout, a
    cut request with 408; meanwhile the collector answers others."""
    collector = unstarted_collector
    collector.start("--header-timeout", "1", "--body-timeout", "1.5", "--keep-alive-timeout", "1")
    connect = lambda: socket.create_connection(("127.0.0.1", collector.port), timeout=5)  # noqa: E731
    slow = [connect() for _ in range(20)]
    idle = [connect() for _ in range(10)]
    half = connect()
    half.sendall(post(orjson.dumps({"data": [pv(str(uuid.uuid4()))]}))[:-10])
    kept = connect()
    kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200")
    try:
        assert healthy(collector)
        trickle = b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        got = answers(slow, trickle, seconds=6)
        assert healthy(collector)  # still answering, and a byte at a time bought nothing
        assert sorted(got) == list(range(20)), f"{20 - len(got)} slow heads still open"
        assert all(0.8 < t < 3 and a.startswith(b"HTTP/1.1 408") for t, a in got.values()), got
        for group, expected in ((idle, b""), ([half], b"HTTP/1.1 408"), ([kept], b"")):
            got = answers(group, b"", seconds=3)  # their clocks started before the slow ones'
            assert sorted(got) == list(range(len(group))), (expected, got)
            assert all(a.startswith(expected) and (a or not expected) for _, a in got.values())
    finally:
        for s in [*slow, *idle, half, kept]:
            s.close()
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        metrics = b"".join(iter(lambda: s.recv(65536), b"")).decode()
    assert 'persona_collector_closed_connections_total{reason="header_timeout"} 30' in metrics
    assert 'persona_collector_closed_connections_total{reason="body_timeout"} 1' in metrics
    logs = collector.stop_and_logs()
    assert "no request head within --header-timeout" in logs


def test_a_connection_flood_gets_503_and_running_out_of_files_kills_nothing(
    unstarted_collector: Collector,
) -> None:
    """With ``ulimit -n 256`` the collector takes as many connections as it can keep without
    running out of file descriptors (the HTTP process used to die at the limit, opening its
    checkpoint, and /health was refused from then on); 300 at once: the ones over get 503, the
    same HTTP process keeps serving, and an event sent afterwards is loaded."""
    collector = unstarted_collector
    collector.start(max_open_files=256)
    pid = collector.http_pid()
    socks = []
    try:
        for _ in range(300):
            socks.append(socket.create_connection(("127.0.0.1", collector.port), timeout=5))
        got = answers(socks, b"", seconds=3)
        refused = [a for _, a in got.values() if a.startswith(b"HTTP/1.1 503")]
        assert 300 - 256 < len(refused) == len(got) < 300, (len(refused), len(got))
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10  # until the closed sockets are gone on the server's side
    while not healthy(collector):
        assert time.monotonic() < deadline, "the collector stopped answering"
        time.sleep(0.2)
    assert collector.http_pid() == pid and os.path.exists(f"/proc/{pid}")  # not restarted
    good = str(uuid.uuid4())
    assert send(collector, post(orjson.dumps({"data": [pv(good)]}))) == 200
    logs = collector.stop_and_logs()
    assert "the open-file limit (ulimit -n 256) holds" in logs and "died" not in logs
    assert collector.query("select event_id from atomic.events") == [(good,)]

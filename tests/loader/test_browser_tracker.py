"""The real Snowplow browser tracker (npm ``@snowplow/browser-tracker``, its own UMD bundle) in
Debian's headless Chromium, posting to a real collector process on 127.0.0.1 that loads into a
real DuckDB file.

A page server on 127.0.0.1 serves ``tests/browser/page.html`` and the bundle; the page tracks a
page view, a custom self-describing event and page pings (it scrolls itself, so activity
tracking sees activity), then posts back every payload the tracker saw acknowledged, with its
domain user info and ``document.cookie``. The warehouse must hold each of those events exactly
once, with the fields the tracker sent and those the collector adds (``network_userid`` from the
``sp`` cookie).

Installed by the project, not here: ``make test`` runs ``npm ci`` in tests/browser, and
``.ci/run`` installs Debian's chromium when it is missing. Outside CI a missing piece skips the
test with the reason; under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.loader.live_collector import Collector

BROWSER_DIR = ROOT / "tests" / "browser"
BUNDLE = BROWSER_DIR / "node_modules/@snowplow/browser-tracker/dist/index.umd.min.js"
PAGE = BROWSER_DIR / "page.html"


@pytest.fixture
def chromium() -> str:
    """Chromium's path; asked for first, so a skip comes before any process starts."""
    found = os.environ.get("PERSONA_CHROMIUM") or shutil.which("chromium")
    missing = []
    if not found:
        missing.append("chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    if not BUNDLE.is_file():
        missing.append(f"{BUNDLE.relative_to(ROOT)} is missing (make test runs npm ci there)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"under CI the browser test must run: {reason}")
        pytest.skip(reason)
    assert found is not None
    return found


class PageServer:
    """Serves the test page and the tracker bundle; keeps the report the page posts back."""

    def __init__(self) -> None:
        self.report: dict[str, Any] | None = None
        self.reported = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                files = {"/": (PAGE, "text/html"), "/tracker.js": (BUNDLE, "text/javascript")}
                if path not in files:
                    self.send_error(404)
                    return
                file, kind = files[path]
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                outer.report = json.loads(self.rfile.read(size))
                outer.reported.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


def run_chromium(executable: str, url: str, profile: Path, server: PageServer) -> str:
    """Open ``url`` headless until the page reports back; return Chromium's log on failure."""
    log = profile.parent / "chromium.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--window-size=1024,768", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={profile}", url],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            server.reported.wait(timeout=20)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return log.read_text(errors="replace")


COLUMNS = {  # tracker protocol field -> atomic column
    "eid": "event_id", "e": "event", "aid": "app_id", "p": "platform", "tv": "v_tracker",
    "url": "page_url", "page": "page_title", "duid": "domain_userid", "sid": "domain_sessionid",
    "vid": "domain_sessionidx", "lang": "br_lang", "pp_may": "pp_yoffset_max",
}  # fmt: skip
EVENT_CODES = {"pv": "page_view", "pp": "page_ping", "ue": "unstruct"}


def test_real_browser_tracker_in_headless_chromium_events_arrive_once(
    chromium: str, collector: Collector, page_server: PageServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{page_server.port}/?collector={collector.url}"
    log = run_chromium(chromium, url, tmp_path / "profile", page_server)
    report = page_server.report
    assert report is not None, f"the page never reported back; Chromium said:\n{log[-4000:]}"
    assert report["errors"] == [] and report["failures"] == [], report
    sent = report["acknowledged"]
    assert sorted(p["e"] for p in sent) == ["pp", "pp", "pv", "ue"], sent

    collector.stop()
    extra = {
        "event_name": "event_name", "network_userid": "network_userid", "useragent": "useragent",
        "page_urlhost": "page_urlhost", "page_urlport": "page_urlport",
        "page_urlpath": "page_urlpath", "page_urlquery": "page_urlquery",
        "page_view_id": "contexts_com_snowplowanalytics_snowplow_web_page_1->>'$[0].id'",
        "step": "unstruct_event_com_acme_checkout_step_1->>'step'",
        "coupon": "unstruct_event_com_acme_checkout_step_1->>'coupon'",
        "ua_family": "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"
        "->>'$[0].useragentFamily'",
    }  # fmt: skip
    names = [*sorted(set(COLUMNS.values())), *extra]
    expressions = [*sorted(set(COLUMNS.values())), *extra.values()]
    rows = [
        dict(zip(names, r, strict=True))
        for r in collector.query(f"select {', '.join(expressions)} from atomic.events")
    ]
    assert collector.query("select count(*) from atomic.failed_events") == [(0,)]
    loaded = {r["event_id"]: r for r in rows}
    # every acknowledged event, exactly once, and nothing else
    assert len(rows) == len(loaded) == len(sent)
    assert set(loaded) == {p["eid"] for p in sent}

    info = report["domainUserInfo"]  # [cookies disabled, domain userid, ..., session id (6)]
    cookies = dict(c.split("=", 1) for c in report["cookie"].split("; ") if "=" in c)
    for payload in sent:
        row = loaded[payload["eid"]]
        for field, column in COLUMNS.items():
            if field in payload:
                expected = EVENT_CODES[payload[field]] if field == "e" else payload[field]
                assert str(row[column]) == str(expected), (column, row, payload)
        assert row["page_url"] == report["href"]
        assert (row["page_urlhost"], row["page_urlport"]) == ("127.0.0.1", page_server.port)
        assert (row["page_urlpath"], row["page_urlquery"]) == ("/", f"collector={collector.url}")
        assert row["domain_userid"] == info[1] and row["domain_sessionid"] == info[6]
        # the collector's sp cookie, which the browser kept and sent with every request
        assert row["network_userid"] == cookies["sp"]
        assert row["useragent"] == report["userAgent"]
        assert row["ua_family"] in ("HeadlessChrome", "Chrome", "Chromium")
    # one page view: its web_page context is on every event
    assert len({r["page_view_id"] for r in rows}) == 1 and rows[0]["page_view_id"]
    by_event = sorted((r["event_name"], r["step"], r["coupon"], r["pp_yoffset_max"]) for r in rows)
    assert by_event == [
        ("checkout_step", "2", "SOMMER-ÄÖ", None),
        ("page_ping", None, None, 300),
        ("page_ping", None, None, 900),
        ("page_view", None, None, None),
    ]

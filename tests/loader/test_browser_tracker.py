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

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import PAGE, PageServer, find_chromium, run_chromium
from tests.loader.live_collector import Collector


@pytest.fixture
def chromium() -> str:
    """Chromium's path; asked for first, so a skip comes before any process starts."""
    return find_chromium()


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer(PAGE)
    yield server
    server.close()


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

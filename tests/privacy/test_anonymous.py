"""Anonymous tracking as Snowplow's collector does it: with the ``SP-Anonymous`` header the
collector neither reads nor sets the ``sp`` cookie (``network_userid`` is the all-zero id) and
stores no IP address. The real browser tracker (``anonymousTracking.withServerAnonymisation``)
in headless Chromium, through the real collector process, into DuckDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from privacy.forget import ANONYMOUS_NUID
from tests.chromium import PageServer, find_chromium, run_chromium
from tests.loader.live_collector import Collector

PAGE = Path(__file__).with_name("anonymous.html")


def pixel(app_id: str) -> dict[str, str]:
    return {"e": "pv", "aid": app_id, "tv": "t", "p": "web", "eid": str(uuid.uuid4()),
            "dtm": "1700000000000"}  # fmt: skip


@pytest.fixture
def chromium() -> str:
    return find_chromium()


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer(PAGE)
    yield server
    server.close()


def test_browser_tracker_with_server_anonymisation(
    chromium: str, collector: Collector, page_server: PageServer, tmp_path: Path
) -> None:
    # a browser that has an sp cookie already, asking to be anonymous: the cookie is not read
    known = requests.get(f"{collector.url}/i", params=pixel("curl"),
                         cookies={"sp": "a-known-browser"},
                         headers={"SP-Anonymous": "*"}, timeout=10)  # fmt: skip
    assert known.ok and "set-cookie" not in known.headers
    named = requests.get(f"{collector.url}/i", params=pixel("named"),
                         timeout=10)  # fmt: skip
    assert "sp=" in named.headers["set-cookie"]  # without the header: a cookie (the control)

    url = f"http://127.0.0.1:{page_server.port}/?collector={collector.url}"
    log = run_chromium(chromium, url, tmp_path / "profile", page_server)
    report = page_server.report
    assert report is not None, f"the page never reported back; Chromium said:\n{log[-4000:]}"
    assert report["errors"] == [] and report["failures"] == [], report
    assert [p["e"] for p in report["acknowledged"]] == ["pv"]
    assert "sp=" not in report["cookie"]  # the collector set no cookie for 127.0.0.1
    collector.stop()
    rows = collector.query(
        "select app_id, network_userid, user_ipaddress, domain_userid from atomic.events "
        "order by app_id"
    )
    by_app = {r[0]: r[1:] for r in rows}
    assert set(by_app) == {"anonymous-test", "curl", "named"}, collector.query(
        "select message from atomic.failed_events"
    )
    assert by_app["anonymous-test"][:2] == (ANONYMOUS_NUID, None)
    assert by_app["curl"][:2] == (ANONYMOUS_NUID, None)
    assert by_app["named"][0] not in (ANONYMOUS_NUID, None) and by_app["named"][1]

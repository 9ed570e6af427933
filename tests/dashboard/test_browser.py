"""`persona dashboard` as a user runs it, opened in headless Chromium: every page draws its
charts and key numbers (the numbers SQL run here gives), shows no error, and a screenshot of
each lands in test-artifacts/dashboard/ (gitignored; CI keeps it as an artifact)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.dashboard.devtools import Browser, chromium
from tests.loader.live_collector import free_port

ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
SETTLED = """(() => {
  const h1 = document.querySelector('[data-testid=stMain] h1');
  const running = document.querySelector('[data-testid=stStatusWidget]');
  const stale = document.querySelector('[data-stale=true]');
  return h1 && h1.innerText.includes(%s) && !running && !stale
    && document.querySelectorAll('[data-testid=stMain] .vega-embed canvas, '
       + '[data-testid=stMain] .vega-embed svg').length >= %d
    && document.querySelector('[data-testid=stMain]').innerText.includes(%s);
})()"""
ERRORS = """Array.from(document.querySelectorAll(
  '[data-testid=stException], [data-testid=stAlertContentError], '
  + '[data-testid=stAlertContentWarning]'
)).map(e => e.innerText)"""


@pytest.fixture
def dashboard(warehouse: Path, reports: Path, tmp_path: Path):
    """`python -m persona dashboard --port P` in its own process, with its own empty HOME (so
    a user's ~/.streamlit cannot change what is tested, and we can see nothing is written)."""
    port, home = free_port(), tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "PERSONA_DUCKDB": str(warehouse),
        "HOME": str(home),
        "PERSONA_DASHBOARD_REPORTS": str(reports),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PERSONA_TARGET", None)
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "persona", "dashboard", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "dashboard.log").read_text())
            try:
                if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the dashboard did not answer in 60 s")
            time.sleep(0.2)
        yield url, home, tmp_path / "dashboard.log"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_every_page_in_headless_chromium(dashboard, sql, tmp_path: Path) -> None:
    chromium()
    url, home, log = dashboard
    [(events,)] = sql("select count(*) from derived.events")
    [(sessions,)] = sql("select count(*) from derived.sessions")
    [(_, members)] = sql(
        "select segment, count(*) from derived.segment_membership "
        "group by 1 order by 2 desc, 1 limit 1"
    )
    [(user, revenue)] = sql(
        "select user_id, revenue from derived.profiles "
        "order by revenue desc, sessions desc, user_id limit 1"
    )
    [(bots,)] = sql("select count(*) from derived.anomalies where detector = 'behaviour'")
    [(version,)] = sql("select distinct rule_set_version from derived.current_user_recommendations")
    pages = [  # (url path, title, charts at least, a key number on the page)
        ("", "Pipeline", 3, f"{events:,}"),
        ("traffic", "Traffic and funnels", 5, f"{sessions:,}"),
        ("segments", "Segments and audiences", 3, f"{members:,}"),
        ("customer", "Customer 360", 1, f"{revenue:,.2f}"),
        ("anomalies", "Anomalies", 2, f"{bots:,}"),
        ("rulesets", "Rule sets", 3, version),
    ]
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.open(f"{url}/")
        for path, title, charts, number in pages:
            if path:  # through the app's own navigation, as a person clicks it
                browser.evaluate(
                    f"document.querySelector('[data-testid=stSidebarNav] "
                    f'a[href$="/{path}"]\').click()'
                )
            if path == "customer":  # search for the top customer, as a person types it
                browser.wait_for(
                    "!!document.querySelector('input[aria-label=\"User id or device id\"]')"
                )
                browser.evaluate(
                    "document.querySelector('input[aria-label=\"User id or device id\"]').focus()"
                )
                browser.send("Input.insertText", text=user)
                for kind in ("keyDown", "keyUp"):
                    browser.send(
                        "Input.dispatchKeyEvent",
                        type=kind,
                        key="Enter",
                        code="Enter",
                        windowsVirtualKeyCode=13,
                    )
            try:
                browser.wait_for(SETTLED % (json.dumps(title), charts, json.dumps(number)), 60)
            finally:
                browser.screenshot(ARTIFACTS / f"{path or 'pipeline'}.png")
            assert browser.evaluate(ERRORS) == [], title
    finally:
        browser.close()
    assert not (home / ".streamlit").exists()  # flags and env only, no config file written
    assert "Traceback" not in log.read_text()

"""Debian's headless Chromium running the real Snowplow browser tracker (npm
``@snowplow/browser-tracker``, its own UMD bundle), for end-to-end tests: a page server for a
test page and the bundle, and a run that waits until the page reports back.

Installed by the project, not here: ``make test`` runs ``npm ci`` in tests/browser, and
``.ci/run`` installs Debian's chromium when it is missing (``PERSONA_CHROMIUM`` names another
binary). Outside CI a missing piece skips the test with the reason; under ``CI=true`` it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

BROWSER_DIR = ROOT / "tests" / "browser"
BUNDLE = BROWSER_DIR / "node_modules/@snowplow/browser-tracker/dist/index.umd.min.js"
PAGE = BROWSER_DIR / "page.html"


def find_chromium() -> str:
    """Chromium's path, once the tracker bundle is installed too; else a skip saying what is
    missing (a failure under CI=true). Call it first, so a skip comes before any process
    starts."""
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
    """Serves a test page (at ``/``) and the tracker bundle (``/tracker.js``) on a free port of
    127.0.0.1; keeps the report the page posts back."""

    def __init__(self, page: Path) -> None:
        self.report: dict[str, Any] | None = None
        self.reported = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                files = {"/": (page, "text/html"), "/tracker.js": (BUNDLE, "text/javascript")}
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


def run_chromium(
    executable: str, url: str, profile: Path, server: PageServer, timeout: float = 20
) -> str:
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
            server.reported.wait(timeout=timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return log.read_text(errors="replace")

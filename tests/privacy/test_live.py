"""Forget while ``persona serve`` holds the warehouse: through its API, inside the process,
between two loader batches and outside a refresh. The real Python tracker sends the events,
through the real collector."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import duckdb
import pytest
import requests
from snowplow_tracker import Emitter, Subject, Tracker
from snowplow_tracker.events import PageView

from privacy import forget as fg
from tests.privacy.conftest import SALT, Built, holders


def track(port: int, duid: str, user_id: str, n: int = 3) -> None:
    emitter = Emitter("127.0.0.1", protocol="http", port=port, method="post", batch_size=1)
    subject = Subject().set_domain_user_id(duid).set_user_id(user_id)
    subject.set_domain_session_id(str(uuid.uuid4()))
    tracker = Tracker("pytest", emitter, subject=subject, app_id="shop")
    for i in range(n):
        tracker.track(PageView(page_url=f"https://shop.example.com/{i}", page_title=str(i)))
    tracker.flush()


def metric(collector: str, name: str) -> float:
    for line in requests.get(f"{collector}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.slow  # the live process, the tracker twice, a forget: ~20 s
def test_forget_through_the_live_process(built: Built, warehouse: Path, live, monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_PRIVACY_SALT", SALT)
    with duckdb.connect(str(warehouse)) as con:
        ids = fg.resolve(con.cursor(), [built.user]).ids
    server = live("--no-refresh", "--no-snapshot", warehouse=warehouse)
    auth = server.headers()

    def known() -> bool:
        got = requests.post(f"{server.api}/v1/decide", json={"user_id": built.user},
                            headers=auth, timeout=10).json()  # fmt: skip
        return bool(got["profile"]["known"])

    assert known()  # synced from the warehouse at start
    new_device = str(uuid.uuid4())
    track(server.collector_port, new_device, built.user)
    deadline = time.monotonic() + 20
    while metric(server.collector, 'persona_events_total{status="good"}') < 3:
        assert time.monotonic() < deadline, "the tracker's events were not loaded"
        time.sleep(0.1)

    assert requests.post(f"{server.api}/v1/forget", json={"id": built.user},
                         timeout=10).status_code == 401  # fmt: skip
    bad = requests.post(f"{server.api}/v1/forget", json={"id": "", "kind": "user_id"},
                        headers=auth, timeout=10)  # fmt: skip
    assert bad.status_code == 400 and "id" in bad.json()["detail"]
    done = requests.post(f"{server.api}/v1/forget", json={"id": built.user},
                         headers=auth, timeout=120)  # fmt: skip
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["status"] == "done" and result["rows_removed"]["atomic.events"] >= 3
    assert result["online_keys_removed"] > 0
    assert not known()  # the online store forgot them at once

    # their new events are dropped at the loader, counted, never stored
    track(server.collector_port, new_device, built.user)
    deadline = time.monotonic() + 20
    while metric(server.collector, "persona_events_suppressed_total") < 3:
        assert time.monotonic() < deadline, "the suppressed events were not counted"
        time.sleep(0.1)
    listed = requests.get(f"{server.api}/v1/forget", headers=auth, timeout=10).json()
    assert [r["status"] for r in listed] == ["done"]
    assert built.user not in str(listed)
    time.sleep(0.5)  # a batch after the dropped events: nothing of theirs in it
    assert server.stop(signal.SIGTERM) == 0
    with duckdb.connect(str(warehouse)) as con:
        assert holders(con, ids | {new_device}) == []
        assert con.execute("select count(*) from atomic.events").fetchone()[0] > 0


def test_a_forget_waits_for_the_open_batch() -> None:
    """The loader holds the gate from a batch's first item to its commit (this thread plays
    the loader); a forget waits for it, and gives up (503, nothing done) when it takes too
    long."""
    import threading

    import pytest

    from privacy.live import Busy, LoaderGate

    gate = LoaderGate()
    gate.enter()
    done = threading.Event()

    def forget() -> None:
        with gate.paused(5):
            done.set()

    waiting = threading.Thread(target=forget)
    waiting.start()
    assert not done.wait(0.3)  # a batch is open: the forget waits
    gate.between()  # committed
    assert done.wait(5)
    waiting.join()
    gate.enter()
    with pytest.raises(Busy), gate.paused(0.1):
        pass
    gate.between()

"""The dashboard beside a live process: the Pipeline page shows the collector's and the loader's
counters as the real `persona serve` (``python -m serving``, its own process) reports them on
``/metrics`` and ``/health``; Customer 360 forgets a customer through its ``POST /v1/forget``
only once their id is typed again, and without a live process, through ``persona forget`` when
the file is free. Events come from the real Snowplow tracker; the warehouse is checked after."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import requests
from streamlit.testing.v1 import AppTest

from dashboard import style
from dashboard.source import snapshot_path
from privacy import forget as fg
from tests.dashboard.test_app import APP, assert_clean, assert_explained, metrics
from tests.loader.live_collector import free_port
from tests.privacy.test_live import metric, track
from tests.serving.conftest import TOKEN, LiveServer

TRACKED = 4  # page views the tracker sends


@pytest.fixture(scope="module")
def server(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`persona serve` over a copy of the dashboard's warehouse (no dbt refresh: the numbers
    hold still while the test compares them), with a few events loaded, a failed one, and a
    refused request."""
    tmp = tmp_path_factory.mktemp("dashboard-live")
    copy = tmp / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    live = LiveServer(tmp, copy).start("--no-refresh")
    try:
        track(live.collector_port, "d18-device", "d18-visitor", n=TRACKED)
        bad = requests.post(f"{live.collector}/com.snowplowanalytics.snowplow/tp2",
                            data=b"{not json", timeout=5)  # fmt: skip
        assert bad.ok  # acknowledged, then kept as a failed event
        huge = requests.get(f"{live.collector}/i?e=pv&x={'y' * 40_000}", timeout=5)
        assert huge.status_code in (413, 414, 431)
        deadline = time.monotonic() + 30
        while (metric(live.collector, 'persona_events_total{status="good"}') < TRACKED
               or metric(live.collector, 'persona_events_total{status="failed"}') < 1
               or metric(live.collector, "persona_spool_pending_bytes") > 0):  # fmt: skip
            assert time.monotonic() < deadline, live.log.read_text()[-3000:]
            time.sleep(0.1)
        while not snapshot_path(copy).exists():
            assert time.monotonic() < deadline, "no snapshot published"
            time.sleep(0.1)
        yield live
    finally:
        live.stop()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, reports: Path):
    monkeypatch.delenv("PERSONA_TARGET", raising=False)
    monkeypatch.setenv("PERSONA_DASHBOARD_REPORTS", str(reports))
    for key in ("PERSONA_API_URL", "PERSONA_COLLECTOR_URL", "PERSONA_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)

    def open_page(page: str, **env: str) -> AppTest:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page(f"views/{page}.py").run()
        return at

    return open_page


def live_env(server: LiveServer) -> dict[str, str]:
    return {"PERSONA_DUCKDB": str(server.warehouse), "PERSONA_API_URL": server.api,
            "PERSONA_COLLECTOR_URL": server.collector, "PERSONA_API_TOKEN": TOKEN}  # fmt: skip


def test_pipeline_shows_the_live_counters_as_metrics_and_health_report_them(
    server: LiveServer, app
) -> None:
    at = app("pipeline", **live_env(server))
    assert_clean(at)
    assert_explained(at)
    shown = metrics(at)
    scraped = {  # read after the page: a counter that moved meanwhile would fail the test
        label: metric(server.collector, series)
        for label, series in (
            ("Events loaded", 'persona_events_total{status="good"}'),
            ("Events failed", 'persona_events_total{status="failed"}'),
            ("Suppressed", "persona_events_suppressed_total"),
            ("Batches", "persona_batches_total"),
            ("Last batch", "persona_batch_rows"),
            ("Requests accepted", 'persona_collector_requests_total{status="accepted"}'),
            ("Requests refused", 'persona_collector_requests_total{status="refused"}'),
            ("Collector restarts", "persona_collector_restarts_total"),
        )
    }
    assert scraped["Events loaded"] >= TRACKED and scraped["Requests refused"] >= 1
    assert scraped["Events failed"] >= 1 and scraped["Batches"] >= 1
    for label, value in scraped.items():
        assert shown[label] == f"{round(value):,}", label
    latency = metric(server.collector, "persona_end_to_end_latency_seconds")
    assert shown["Latency"] == style.duration(latency) and latency > 0
    assert shown["Spool not yet loaded"] == "0 B"
    health = requests.get(f"{server.api}/health", timeout=5).json()
    assert shown["Refreshes"] == f"{health['refreshes']:,}"
    assert shown["Refresh failures"] == f"{health['refresh_failures']:,}"
    assert shown["Last refresh"] == "never"  # --no-refresh
    published = float(shown["Snapshot published"].split()[0])
    assert abs(published - health["snapshot_age_s"]) < 10
    assert any(f"up at {server.api}" in m.value for m in at.markdown)


def test_pipeline_says_what_to_set_and_a_dead_endpoint_does_not_hang(app, warehouse) -> None:
    at = app("pipeline", PERSONA_DUCKDB=str(warehouse))
    assert_clean(at)
    assert any("PERSONA_COLLECTOR_URL" in i.value and "PERSONA_API_URL" in i.value
               for i in at.info)  # fmt: skip
    assert metrics(at)["Events in the warehouse"] != style.NOTHING  # the rest still draws

    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    at = app("pipeline", PERSONA_COLLECTOR_URL=dead, PERSONA_API_URL=dead)
    assert time.monotonic() - started < 10
    assert_clean(at)
    down = [w.value for w in at.warning]
    assert f"Collector at {dead}/metrics is down: connection refused." in down
    assert f"API at {dead}/health is down: connection refused." in down

    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        quiet = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        at = app("pipeline", PERSONA_COLLECTOR_URL=quiet, PERSONA_API_URL=quiet)
        took = time.monotonic() - started
    assert_clean(at)
    down = [w.value for w in at.warning]
    assert f"Collector at {quiet}/metrics is down: no answer in 1 s." in down
    assert took < 10  # both read at once, each given 1 s

    at = app("pipeline", PERSONA_API_URL="127.0.0.1:8080")
    assert any("PERSONA_API_URL: want a URL like" in w.value for w in at.warning)


def ids_and_events(database: Path, user: str) -> tuple[set[str], int]:
    """The ids a forget resolves, and the raw events holding one (read-only)."""
    with duckdb.connect(str(database), read_only=True) as con:
        ids = fg.resolve(con.cursor(), [user]).ids
        con.execute("create temp table ids as select unnest(?::varchar[]) as id", [sorted(ids)])
        (n,) = con.execute(
            "select count(*) from atomic.events where user_id in (select id from ids) "
            "or domain_userid in (select id from ids) or network_userid in (select id from ids) "
            "or domain_sessionid in (select id from ids)"
        ).fetchone()
    return ids, n


def top_customer(database: Path) -> str:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(
            "select user_id from derived.profiles where is_identified "
            "order by revenue desc, sessions desc, user_id limit 1"
        ).fetchone()[0]


def open_forget(at: AppTest, user: str) -> AppTest:
    at.text_input(key="customer_search").input(user).run()
    at.toggle(key="forget_open").set_value(True).run()
    assert_clean(at)
    return at


def press_anyway(at: AppTest) -> None:
    """Press "Forget" as a crafted message would, even while it is disabled (AppTest, like a
    browser, refuses to click a disabled button)."""
    go = at.button(key="forget_go")
    go.proto.disabled = False
    go.click().run()
    assert_clean(at)


def test_forget_through_the_live_process_only_once_the_id_is_typed_again(
    server: LiveServer, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = snapshot_path(server.warehouse)
    user = top_customer(snapshot)
    ids, events = ids_and_events(snapshot, user)
    assert events > 0
    at = open_forget(app("customer", **live_env(server)), user)
    assert_explained(at)
    shown = metrics(at)
    assert shown["Ids stitched to them"] == f"{len(ids):,}"
    preview = dict(at.dataframe[-1].value.itertuples(index=False))
    assert preview["atomic.events"] == events and preview["derived.profiles"] == 1
    assert shown["Rows to delete"] == f"{sum(preview.values()):,}"
    assert any(f"live process at {server.api}" in c.value for c in at.caption)

    assert at.button(key="forget_go").disabled
    press_anyway(at)  # not confirmed
    at.text_input(key="forget_confirm").input(user[:-1]).run()
    assert at.button(key="forget_go").disabled
    press_anyway(at)  # confirmed with another id
    assert not at.success
    listed = requests.get(f"{server.api}/v1/forget", headers=server.headers(), timeout=10)
    assert listed.json() == []
    assert ids_and_events(snapshot, user)[1] == events

    at.text_input(key="forget_confirm").input(user).run()
    assert not at.button(key="forget_go").disabled
    monkeypatch.setenv("PERSONA_API_TOKEN", "not-the-token")  # refused: one line, no trace
    at.button(key="forget_go").click().run()
    assert not at.exception and not at.success
    (refused,) = at.error
    assert "401" in refused.value and "nothing was deleted" in refused.value
    assert ids_and_events(snapshot, user)[1] == events

    monkeypatch.setenv("PERSONA_API_TOKEN", TOKEN)
    at.button(key="forget_go").click().run()
    assert_clean(at)
    (request,) = requests.get(f"{server.api}/v1/forget", headers=server.headers(),
                              timeout=10).json()  # fmt: skip
    assert request["status"] == "done"
    removed = request["rows_removed"]
    (done,) = at.success
    assert request["request_id"] in done.value and f"Forgot {user}" in done.value
    assert f"{sum(removed.values()):,} rows deleted" in done.value
    assert removed["atomic.events"] == events
    # the snapshot was republished by the forget: nothing of theirs in it
    with duckdb.connect(str(snapshot), read_only=True) as con:
        con.execute("create temp table ids as select unnest(?::varchar[]) as id", [sorted(ids)])
        for table, column in (("atomic.events", "domain_userid"), ("atomic.events", "user_id"),
                              ("derived.sessions", "stitched_user_id"),
                              ("derived.profiles", "user_id")):  # fmt: skip
            (n,) = con.execute(
                f"select count(*) from {table} where {column} in (select id from ids)"
            ).fetchone()
            assert n == 0, (table, column)
    assert at.text_input(key="customer_search").value == ""  # the page starts over


def test_forget_without_a_live_process_runs_persona_forget_when_the_file_is_free(
    warehouse: Path, tmp_path: Path, app, duckdb_holder
) -> None:
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    user = top_customer(copy)
    _, events = ids_and_events(copy, user)
    at = open_forget(app("customer", PERSONA_DUCKDB=str(copy)), user)
    assert any(f"Runs `persona forget` on {copy}" in c.value for c in at.caption)
    press_anyway(at)  # not confirmed
    assert ids_and_events(copy, user)[1] == events

    at.text_input(key="forget_confirm").input(user).run()
    at.button(key="forget_go").click().run()
    assert_clean(at)
    assert ids_and_events(copy, user)[1] == 0
    with duckdb.connect(str(copy), read_only=True) as con:
        (request_id, removed) = con.execute(
            "select request_id, rows_removed from privacy.forget_requests"
        ).fetchone()
    assert request_id in at.success[0].value
    assert json.loads(removed)["atomic.events"] == events

    # held by another process and no live process known: nothing offered, what to set said
    other = top_customer(copy)
    holder_copy = tmp_path / "held.duckdb"
    shutil.copy(copy, holder_copy)
    shutil.copy(copy, snapshot_path(holder_copy))
    duckdb_holder(holder_copy)
    at = open_forget(app("customer", PERSONA_DUCKDB=str(holder_copy)), other)
    assert not [b for b in at.button if b.key == "forget_go"]
    assert any("held by another process" in i.value and "PERSONA_API_URL" in i.value
               for i in at.info)  # fmt: skip

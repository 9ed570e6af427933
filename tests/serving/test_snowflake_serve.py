"""``persona serve --warehouse snowflake`` against fakesnow, run in this process.

fakesnow is a fake: a Snowflake emulator that translates Snowflake SQL to DuckDB behind the
connector's interface (no account is available here). It is kind where Snowflake is not: no
network, no session expiry, no dynamic tables (the serving tables here are plain tables the
test changes by hand, as a dynamic table's refresh would), no privileges or masking; and the
Snowpipe Streaming channel is tests/snowflake/streaming_fake.py's fake (commits later, skips
bad rows silently, as the SDK's server does), writing into fakesnow's ATOMIC.EVENTS.

What is real: the live process (``Live.run`` with ``SnowflakeWarehouse``, the collector, the
loader thread, uvicorn), the Snowplow Python tracker posting to the collector, and the
official ``snowplow-signals`` SDK reading attributes back over HTTP.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from snowplow_signals import SignalsSandbox

from loader.enriched import parse_line
from loader.errors import ConfigError
from loader.sources.kafka import parse_uri
from loader.sources.synthetic import SyntheticConfig, generate_lines
from serving.__main__ import main as serve_main
from serving.batch import SNOWFLAKE
from serving.live import Live, Settings
from serving.snowflake import KAFKA_GROUP, SnowflakeWarehouse, connector, stream_source
from serving.visitors import known_visitors
from tests.loader.kafka_broker import CLIENT, Produced
from tests.loader.live_collector import free_port
from tests.serving.conftest import TOKEN, copy_warehouse
from tests.serving.fakesnow_tables import copy_serving_tables
from tests.serving.test_signals_sdk import EXPECTED, groups, track, wait_for
from tests.snowflake.conftest import FAKESNOW_ARROW_COPY
from tests.snowflake.differential import DATABASE, Fakesnow

pytestmark = pytest.mark.filterwarnings(FAKESNOW_ARROW_COPY)
SYNC_SECONDS = 0.3


class Running:
    """One live process against the fake account, on a thread of this test."""

    def __init__(self, snow: Fakesnow, tmp: Path, source: str | None = None) -> None:
        self.collector_port, api_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{api_port}"
        settings = Settings(
            source=source or f"http://127.0.0.1:{self.collector_port}",
            listen=f"127.0.0.1:{api_port}",
            warehouse="", token=TOKEN, target="snowflake", sync_seconds=SYNC_SECONDS,
            state_dir=tmp / "state", spool=str(tmp / "spool"), snapshot=None,
            batch_seconds=0.1,
        )  # fmt: skip
        warehouse = SnowflakeWarehouse(
            settings,
            connect=lambda: snow.instance.connect(database=DATABASE, schema="DERIVED"),
            sink=lambda _uri: snow.sink("serving"),
        )
        self.live = Live(settings, warehouse)
        self.outcome: list[Any] = []
        self.thread = threading.Thread(target=lambda: self.outcome.append(self.live.run()))
        self.thread.start()
        deadline = time.monotonic() + 60
        while True:
            assert self.thread.is_alive(), "the live process stopped"
            try:
                if requests.get(f"{self.api}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the API never answered"
            time.sleep(0.05)
        self.sdk = SignalsSandbox(api_url=self.api, sandbox_token=TOKEN)

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.api}/health", timeout=5).json()

    def stop(self) -> None:
        self.live.stop()
        self.thread.join(timeout=90)
        assert not self.thread.is_alive() and self.outcome == [0]


@pytest.fixture
def snow(demo: Path, tmp_path: Path) -> Iterator[Fakesnow]:
    """A fake account: the atomic tables as `persona snowflake setup` creates them, and the
    demo warehouse's serving tables in DERIVED as its dynamic tables would hold them."""
    account = Fakesnow()
    copy_serving_tables(account.cursor, copy_warehouse(demo, tmp_path / "demo.duckdb"), DATABASE)
    yield account
    account.close()


@pytest.fixture
def serve(snow: Fakesnow, tmp_path: Path) -> Iterator[Callable[[], Running]]:
    started: list[Running] = []

    def start(source: str | None = None) -> Running:
        started.append(Running(snow, tmp_path, source))
        return started[-1]

    yield start
    for running in started:
        if running.thread.is_alive():
            running.live.stop()
            running.thread.join(timeout=90)


def sql(snow: Fakesnow, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A statement on a session of the test's own (the live process has its own sessions)."""
    con = snow.instance.connect(database=DATABASE, schema="DERIVED")
    try:
        cur = con.cursor()
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []
    finally:
        con.close()


def sessions_7d(running: Running, user: str) -> Any:
    got = running.sdk.get_group_attributes(name="profiles", version=1, attributes="sessions_7d",
                                           attribute_key="user_id", identifier=user)  # fmt: skip
    return got["sessions_7d"]


def sql_count(snow: Fakesnow, column: str, value: str) -> int:
    return int(sql(snow, f"select count(*) from atomic.events where {column} = %s", (value,))[0][0])


def test_serve_follows_snowflake_and_the_stream_and_outlives_a_failed_sync(
    serve, snow, caplog: pytest.LogCaptureFixture
) -> None:
    running = serve()
    health = running.health()
    assert health["warehouse"] == "snowflake" and health["refreshes"] >= 1, health
    assert health["refresh_failures"] == 0 and health["batch_as_of"], health

    # batch: the profiles Snowflake holds serve at once, and a change there arrives by a sync
    first = "select user_id, sessions_7d from profiles where sessions_7d > 0 order by 1 limit 1"
    ((user, before),) = sql(snow, first)
    assert sessions_7d(running, user) == before
    sql(snow, "update profiles set sessions_7d = sessions_7d + 5 where user_id = %s", (user,))
    wait_for(lambda: {"v": sessions_7d(running, user)}, lambda g: g["v"] == before + 5, 10)

    # stream: the SDK publishes groups, the tracker's events reach them, and Snowflake
    sdk = running.sdk
    sdk.publish(list(groups()))
    duid = str(uuid.uuid4())
    track(running.collector_port, duid, str(uuid.uuid4()))
    shop = {"name": "shop", "attribute_key": "domain_userid", "identifier": duid}
    got = wait_for(lambda: sdk.get_service_attributes(**shop), lambda g: g.get("cart_value"))
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    wait_for(lambda: {"n": sql_count(snow, "domain_userid", duid)}, lambda g: g["n"] == 5, 10)
    with contextlib.closing(snow.instance.connect(database=DATABASE)) as con:
        assert duid in {v.domain_userid for v in known_visitors(con.cursor(), SNOWFLAKE.param)}

    # a failing sync: the API keeps the last good values, /health says how stale, a log line
    sql(snow, "create table profiles_kept as select * from profiles")
    sql(snow, "drop table profiles")
    failing = wait_for(running.health, lambda h: h["refresh_failures"] >= 2, 10)
    assert "profiles" in failing["last_refresh_error"], failing
    assert "Snowflake sync failed (derived.profiles missing)" in caplog.text
    assert sessions_7d(running, user) == before + 5
    time.sleep(SYNC_SECONDS * 2)
    stale = running.health()
    assert stale["last_refresh_age_s"] > failing["last_refresh_age_s"] >= SYNC_SECONDS, stale
    assert stale["batch_as_of"] == failing["batch_as_of"]
    # ... and recovers by itself once the table is back
    sql(snow, "create table profiles as select * from profiles_kept")
    sql(snow, "update profiles set sessions_7d = sessions_7d + 1 where user_id = %s", (user,))
    wait_for(lambda: {"v": sessions_7d(running, user)}, lambda g: g["v"] == before + 6, 10)
    # (the store is written during the sync, its status after it)
    recovered = wait_for(running.health, lambda h: h["last_refresh_error"] is None, 5)
    assert recovered["last_refresh_age_s"] < stale["last_refresh_age_s"], recovered
    assert recovered["batch_as_of"] > stale["batch_as_of"]
    running.stop()

    # a restart rebuilds the stream attributes from Snowflake's ATOMIC.EVENTS
    again = serve()
    rebuilt = again.sdk.get_service_attributes(**shop)
    assert rebuilt == got
    assert sessions_7d(again, user) == before + 6
    again.stop()


def test_a_kafka_consumer_group_of_its_own_feeds_the_stream_only(serve, snow, kafka_broker) -> None:
    """``--source kafka://``: stream attributes from the topic, in the group persona-serving
    (the URI names none), committed there; nothing is written to Snowflake (another loader,
    in its own group, does that)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    lines = []  # a day of synthetic shoppers, their events restamped within the last minutes
    for i, line in enumerate(generate_lines(SyntheticConfig(users=4, days=1, seed=13))):
        values = line.split("\t")
        values[3] = (now - timedelta(seconds=600 - i % 600)).isoformat(sep=" ")
        lines.append("\t".join(values))
    events = [e for e in map(parse_line, lines) if isinstance(e, dict)]
    session = Counter(e["domain_sessionid"] for e in events if e["event_name"] == "page_view")
    sid, views = session.most_common(1)[0]
    topic = kafka_broker.create_topic(1)
    produced = Produced(kafka_broker, topic)
    produced.send((line.encode() for line in lines), lambda _i: 0)
    produced.flush()
    settings = "&".join(f"{k}={v}" for k, v in CLIENT.items())
    running = serve(stream_source(f"kafka://{kafka_broker.bootstrap}/{topic}?"
                                  f"offset_reset=earliest&{settings}"))  # fmt: skip
    body = {"attributes": ["session_activity_v1:page_views"],
            "attribute_keys": {"domain_sessionid": [sid]}}  # fmt: skip

    def page_views() -> dict[str, Any]:
        got = requests.post(f"{running.api}/api/v1/get-online-attributes", json=body,
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)  # fmt: skip
        return {"n": got.json()["page_views"][0]}

    wait_for(page_views, lambda g: g["n"] == views, 30)
    kafka_broker.await_commit(KAFKA_GROUP, topic, produced.ends())
    assert sql_count(snow, "domain_sessionid", sid) == 0
    running.stop()


def test_the_kafka_group_is_this_process_s_own_unless_named() -> None:
    assert stream_source("kafka://b:9092/t") == (
        f"kafka://b:9092/t?group={KAFKA_GROUP}&offset_reset=latest")  # fmt: skip
    named = stream_source("kafka://b:9092/t?group=mine&offset_reset=earliest&x.y=1")
    assert parse_uri(named).group == "mine" and parse_uri(named).offset_reset == "earliest"
    assert stream_source("http://127.0.0.1:9090") == "http://127.0.0.1:9090"


def test_missing_credentials_stop_the_start_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="set SNOWFLAKE_USER, SNOWFLAKE_PRIVATE_KEY_PATH"):
        connector({"SNOWFLAKE_ACCOUNT": "acme-1"})
    for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERSONA_TARGET", "snowflake")
    monkeypatch.setattr("loader.logs.configure", lambda *_a, **_k: None)  # pytest's handlers stay
    argv = ["--source", "http://127.0.0.1:9", "--listen", "127.0.0.1:0",
            "--state-dir", str(tmp_path / "state")]  # fmt: skip
    assert serve_main(argv) == 2
    assert "set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # nothing started

    def refused() -> Any:
        raise OSError("250001: incorrect username or password")

    settings = Settings(source="-", listen="127.0.0.1:0", warehouse="", token="t")
    with pytest.raises(ConfigError, match=r"cannot connect .*250001"):
        SnowflakeWarehouse(settings, connect=refused)

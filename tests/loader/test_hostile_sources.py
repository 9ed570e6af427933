"""One hostile corpus through every source that can carry it: ``file:``, ``tail:``, Kafka (a real
broker) and the collector (GET and POST), each a ``python -m loader`` process as a user runs it.

The corpus: JSON nested past what the writers accept (the poison pill that used to stop the
loader for good), a context naming hundreds of made-up schemas (which used to add a column
each), more entities than a field may carry, and personal data in every loose form (a user id,
IP addresses with spaces, ports, zones, zero-padded octets) in good events and in input that
fails. Each run must: stay up (or end with 0, for a file), load every good event once, keep
each bad one as a failed event with a reason, store no personal value in the clear anywhere
(events, failed events, the collector's spool, which must be readable by its owner alone), and
add no entity column outside the schema policy.
"""

from __future__ import annotations

import base64
import csv
import json
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.contract import FIELDS
from tests.conftest import ROOT
from tests.loader.kafka_broker import Broker, Loader, Produced, wait_for
from tests.loader.live_collector import Collector

SALT = "hostile-test-salt"
USER = "jane.doe@example.com"
DEVICE = "d3v1ce-0f-jane"
IPS = ["203.0.113.77 ", "203.0.113.77:8080", "203.000.113.077", "fe80::1%eth0", "not-an-ip"]
CLEAR = [USER, DEVICE, "203.0.113.77", "113.077", "fe80::1", "not-an-ip"]
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
AT = {f.name: i for i, f in enumerate(FIELDS)}
POLICY = ["--max-new-columns-per-hour", "20"]  # of the defaults, one a test can exceed


@pytest.fixture(autouse=True)
def _pii(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader processes inherit these: pseudonymize the user and device ids, and a cap on
    new columns that the flood exceeds."""
    monkeypatch.setenv("PERSONA_PII_FIELDS", "user_id,domain_userid")
    monkeypatch.setenv("PERSONA_PII_SALT", SALT)
    monkeypatch.setenv("PERSONA_MAX_NEW_COLUMNS_PER_HOUR", "20")  # the flag, where one is given


def deep(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


def context(*entities: dict) -> str:
    return json.dumps({"schema": CONTEXTS, "data": list(entities)})


def entity(schema: str, data: dict | None = None) -> dict:
    return {"schema": f"iglu:{schema}/jsonschema/1-0-0", "data": data or {"n": 1}}


HOSTILE_CONTEXTS = {
    "poison pill: 300 levels": context(entity("com.acme/deep", deep(300))),
    "deeper than the limit: 80 levels": context(entity("com.acme/deep", deep(80))),
    "400 made-up schemas": context(*(entity(f"com.flood/s{i}") for i in range(400))),
    "1,001 entities": context(*(entity("com.acme/many") for _ in range(1001))),
}


# -- enriched TSV ---------------------------------------------------------------------------


def tsv_corpus(fixture_line: str) -> tuple[list[str], list[str], int]:
    """Lines, the event ids that must load, and how many lines must fail."""
    base = fixture_line.split("\t")
    lines, good = [], []

    def line(**fields: str) -> str:
        values = list(base)
        values[AT["event_id"]] = str(uuid.uuid4())
        values[AT["user_id"]], values[AT["domain_userid"]] = USER, DEVICE
        for name, value in fields.items():
            values[AT[name]] = value
        return "\t".join(values)

    for i in range(10):
        lines.append(line(user_ipaddress=IPS[i % len(IPS)]))
        good.append(lines[-1].split("\t")[AT["event_id"]])
    bad = 0
    for i, contexts in enumerate(HOSTILE_CONTEXTS.values()):
        lines.insert(2 * i + 1, line(contexts=contexts, user_ipaddress=IPS[i % len(IPS)]))
        bad += 1
    # a line of the wrong shape that still carries the user's data
    lines.insert(5, f"uid={USER}&duid={DEVICE}&ip=203.0.113.77\tonly two fields")
    return lines, good, bad + 1


def stored_text(con: duckdb.DuckDBPyConnection) -> str:
    """Every value of both tables, as text."""
    return "\n".join(
        str(v)
        for table in ("atomic.events", "atomic.failed_events")
        for row in con.execute(f"select * from {table}").fetchall()
        for v in row
    )


def check_warehouse(db: Path, good: list[str], failed: int, columns_before: int) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        ids = [r[0] for r in con.execute("select event_id from atomic.events").fetchall()]
        assert sorted(ids) == sorted(good), "each good event exactly once"
        rows = con.execute("select error_type, message, raw from atomic.failed_events").fetchall()
        assert len(rows) >= failed and all(t and m and r for t, m, r in rows), rows
        reasons = " ".join(m for _, m, _ in rows)
        assert "nested deeper than 64 levels" in reasons
        assert "max_new_columns_per_hour=20" in reasons and "more than 1000" in reasons
        text = stored_text(con)
        for value in CLEAR:
            assert value not in text, f"{value!r} stored in the clear"
        assert "203.0.113.x" in text  # anonymized, not dropped
        entity_columns = con.execute(
            "select count(*) from information_schema.columns where table_schema = 'atomic' "
            "and table_name = 'events' and (column_name like 'contexts_%' "
            "or column_name like 'unstruct_event_%')"
        ).fetchone()[0]
        assert entity_columns - columns_before <= 20, "columns outside the schema policy"
    finally:
        con.close()


def loader(*args: str) -> list[str]:
    return [sys.executable, "-m", "loader", "--batch-seconds", "0.2", "--quiet", *POLICY, *args]


def test_file_source(tmp_path: Path, fixture_line: str) -> None:
    lines, good, failed = tsv_corpus(fixture_line)
    path = tmp_path / "events.tsv"
    path.write_text("".join(f"{line}\n" for line in lines))
    db = tmp_path / "w.duckdb"
    done = subprocess.run(loader("--source", f"file:{path}", "--sink", f"duckdb:{db}"),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    check_warehouse(db, good, failed, 0)


def test_csv_source(tmp_path: Path) -> None:
    """A warehouse export: the cells are protected before parsing, so a failed row's raw CSV
    line (whose columns only the header names) holds no clear value either."""
    header = ["event_id", "collector_tstamp", "user_id", "domain_userid", "user_ipaddress",
              "contexts_com_acme_deep_1_0_0"]  # fmt: skip
    good, rows = [], []
    for i, ip in enumerate(IPS):
        eid = str(uuid.uuid4())
        good.append(eid)
        rows.append([eid, "2026-01-02 10:00:00", USER, DEVICE, ip, ""])
        if i == 1:  # a poison pill, a row that fails with the user's data, a short row
            deep_cell = json.dumps([{"d": deep(300)}])
            rows.append([str(uuid.uuid4()), "2026-01-02 10:00:00", USER, DEVICE, ip, deep_cell])
            rows.append([str(uuid.uuid4()), "yesterday", USER, DEVICE, "203.0.113.77", ""])
            rows.append([str(uuid.uuid4()), "2026-01-02 10:00:00", USER, DEVICE])
    path, db = tmp_path / "export.csv", tmp_path / "w.duckdb"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    done = subprocess.run(loader("--source", f"csv:{path}", "--sink", f"duckdb:{db}"),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        ids = [r[0] for r in con.execute("select event_id from atomic.events").fetchall()]
        assert sorted(ids) == sorted(good)
        failed = con.execute("select error_type, message, raw from atomic.failed_events").fetchall()
        assert sorted(t for t, _, _ in failed) == [
            "invalid_field", "invalid_field", "wrong_field_count"
        ]  # fmt: skip
        assert any("nested deeper than 64 levels" in m for _, m, _ in failed)
        text = stored_text(con)
        for value in CLEAR:
            assert value not in text, f"{value!r} stored in the clear"
    finally:
        con.close()


def test_tail_source_stays_up(tmp_path: Path, fixture_line: str) -> None:
    lines, good, failed = tsv_corpus(fixture_line)
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text("")
    args = loader("--source", f"tail:{path}", "--sink", f"duckdb:{db}")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with path.open("a") as out:
            for line in lines:  # one line at a time, as a writer appends
                out.write(line + "\n")
                out.flush()
                time.sleep(0.01)
        checkpoint = Path(f"{path}.persona-checkpoint")
        wait_for(
            lambda: (
                checkpoint.exists()
                and json.loads(checkpoint.read_text())["offset"] == path.stat().st_size
            ),
            lambda: f"the tail loader to commit the file: {proc.poll()}",
            timeout=60,
        )
        assert proc.poll() is None, "the tail loader stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    check_warehouse(db, good, failed, 0)


def test_kafka_source(kafka_broker: Broker, tmp_path: Path, fixture_line: str) -> None:
    lines, good, failed = tsv_corpus(fixture_line)
    topic = kafka_broker.create_topic(2)
    produced = Produced(kafka_broker, topic)
    produced.send((line.encode() for line in lines), lambda i: i % 2)
    produced.flush()
    db, group = tmp_path / "w.duckdb", f"hostile-{uuid.uuid4().hex[:8]}"
    run = Loader(kafka_broker.uri(topic, group), db, tmp_path / "loader.log")
    run.start()
    try:  # Kafka's offsets move only once the warehouse has the messages
        kafka_broker.await_commit(group, topic, produced.ends(), run.log_text)
        assert run.proc is not None and run.proc.poll() is None, run.log_text()
        run.stop()
    finally:
        run.kill()
    check_warehouse(db, good, failed, 0)


# -- the collector --------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def hostile_collector(tmp_path: Path) -> Iterator[Collector]:
    c = Collector(tmp_path)
    c.start(*POLICY)
    yield c
    if c.proc and c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()


def test_collector_get_and_post(hostile_collector: Collector) -> None:
    c = hostile_collector
    tp2 = f"{c.url}/com.snowplowanalytics.snowplow/tp2"
    good: list[str] = []

    def pv(**more: str) -> dict[str, str]:
        eid = str(uuid.uuid4())
        return {"e": "pv", "eid": eid, "url": "https://shop.example.com/", "uid": USER,
                "duid": DEVICE, **more}  # fmt: skip

    for i, ip in enumerate(IPS):
        payload = pv(ip=ip)
        if i % 2:
            assert requests.get(f"{c.url}/i", params=payload, timeout=10).ok
        else:
            body = {"schema": "iglu:x/payload_data/jsonschema/1-0-4", "data": [payload]}
            assert requests.post(tp2, json=body, timeout=10).ok
        good.append(payload["eid"])
    failed = 0
    for contexts in HOSTILE_CONTEXTS.values():
        if len(contexts) < 20_000:  # by GET, base64 in cx (a query string takes 32 KiB) ...
            r = requests.get(f"{c.url}/i", params=pv(cx=b64(contexts)), timeout=10)
        else:  # ... and by POST, plain JSON in co
            r = requests.post(tp2, json={"data": [pv(co=contexts)]}, timeout=10)
        assert r.status_code == 200, r.status_code
        failed += 1
        assert requests.get(f"{c.url}/health", timeout=10).ok
    bad_body = f'{{"data":[{{"uid":"{USER}","duid":"{DEVICE}","ip":"203.0.113.77"'
    assert requests.post(tp2, data=bad_body, timeout=10).ok
    failed += 1
    # the spool holds what was acknowledged: readable by its owner alone, and protected
    for path in c.spool.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
            data = path.read_text(errors="replace")
            for value in CLEAR:
                assert value not in data, f"{value!r} in the clear in {path.name}"
    # the poison pill is loaded as a failed event, and a restart does not meet it again
    wait_for(lambda: _settled(c, len(good) + failed), "the collector to load the corpus", 60)
    c.stop()
    c.start(*POLICY)
    after = pv()
    assert requests.get(f"{c.url}/i", params=after, timeout=10).ok
    good.append(after["eid"])
    wait_for(lambda: _settled(c, 1), "the restarted collector to load", 60)
    c.stop()
    check_warehouse(c.db, good, failed, 0)


def _done(c: Collector) -> float:
    """Events and failed events the loader has committed (read from /metrics, since the loader
    process holds the DuckDB file)."""
    text = requests.get(f"{c.url}/metrics", timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("persona_events_total{")
    )


def _settled(c: Collector, expected: int) -> bool:
    return _done(c) >= expected


# -- fuzz: any JSON shape in any JSON field --------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(), kids, max_size=5),
    max_leaves=30,
) | st.integers(0, 400).map(deep)
SHAPES = st.one_of(
    JSON.map(lambda v: {"co": json.dumps(v)}),  # a contexts field of any shape
    JSON.map(lambda v: {"co": context({"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": v})}),
    JSON.map(lambda v: {"e": "ue", "ue_pr": json.dumps({"schema": "s", "data": v})}),
    JSON.map(
        lambda v: {
            "e": "ue",
            "ue_pr": json.dumps(
                {"schema": "s", "data": {"schema": "iglu:com.acme/y/jsonschema/1-0-0", "data": v}}
            ),
        }
    ),
    st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=6),  # any parameters
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fields=SHAPES, unicode=st.text(max_size=20))
def test_fuzz_any_payload_is_an_event_or_a_failed_event(
    hostile_collector: Collector, fields: dict[str, str], unicode: str
) -> None:
    """Every payload the collector acknowledges is loaded as an event or kept as a failed event,
    and the next request is served."""
    c = hostile_collector
    payload = {"e": "pv", "eid": str(uuid.uuid4()), "url": "https://shop.example.com/",
               "page": unicode, **fields}  # fmt: skip
    before = _done(c)
    r = requests.post(f"{c.url}/com.snowplowanalytics.snowplow/tp2",
                      json={"data": [payload]}, timeout=10)  # fmt: skip
    assert r.status_code in (200, 413), r.status_code
    assert requests.get(f"{c.url}/health", timeout=10).ok
    if r.status_code == 200:
        wait_for(lambda: _done(c) >= before + 1, "the payload to be loaded or failed", 30)
        assert c.proc is not None and c.proc.poll() is None

"""SQL while live: while ``python -m serving`` holds the warehouse, other processes read the
published snapshot (``warehouse.snapshot.duckdb``) with plain ``duckdb`` in read-only mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import requests
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView

from tests.serving.conftest import copy_warehouse
from tests.serving.test_decide import BROWSER, WEB_PAGE

# a reader as a user's notebook would be: its own process, read-only, nothing of Persona's
READ = textwrap.dedent("""
    import duckdb, json, os, sys
    path, device = sys.argv[1], sys.argv[2]
    con = duckdb.connect(path, read_only=True)

    def counts():
        one = lambda sql, *p: con.execute(sql, list(p)).fetchone()[0]
        return {
            "events": one("select count(*) from atomic.events"),
            "profiles": one("select count(*) from derived.profiles"),
            "device_events": one("select count(*) from atomic.events where domain_userid = ?",
                                 device),
            # a device that never logged in is its own user
            "device_profiles": one("select count(*) from derived.profiles where user_id = ?",
                                   device),
        }

    print(json.dumps({"inode": os.stat(path).st_ino, **counts()}), flush=True)
    if len(sys.argv) > 3:  # hold the file open; read again when told to
        sys.stdin.readline()
        print(json.dumps(counts()), flush=True)
""")


def read(path: Path, device: str) -> dict:
    done = subprocess.run([sys.executable, "-c", READ, str(path), device], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def track_visitor(collector_port: int) -> str:
    duid = str(uuid.uuid4())
    emitter = Emitter("127.0.0.1", protocol="http", port=collector_port, method="post",
                      batch_size=1)  # fmt: skip
    subject = Subject().set_domain_user_id(duid).set_domain_session_id(str(uuid.uuid4()))
    tracker = Tracker("pytest", emitter, app_id="persona-shop",
                      subject=subject.set_useragent(BROWSER))  # fmt: skip
    page = SelfDescribingJson(WEB_PAGE, {"id": str(uuid.uuid4())})
    tracker.track(PageView(page_url="https://shop.persona.dev/", page_title="home",
                           context=[page]))  # fmt: skip
    tracker.flush()
    return duid


def test_another_process_reads_the_live_data_from_the_published_snapshot(
    live, demo: Path, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    snapshot = tmp_path / "warehouse.snapshot.duckdb"
    killed = tmp_path / ".warehouse.snapshot.duckdb.1.tmp"  # a killed publisher's copy
    killed.write_bytes(b"half a copy")
    server = live("--refresh-seconds", "1", "--snapshot-seconds", "0", warehouse=warehouse)

    # published at start: the warehouse as served, readable while the live process holds it
    deadline = time.monotonic() + 30
    while requests.get(f"{server.api}/health", timeout=5).json()["snapshots"] < 1:
        assert time.monotonic() < deadline, "no snapshot published at start"
        time.sleep(0.05)
    first = read(snapshot, "nobody")
    assert first["events"] > 0 and first["profiles"] > 0

    # a reader that keeps the snapshot open across the next publications
    holder = subprocess.Popen([sys.executable, "-c", READ, str(snapshot), "nobody", "hold"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        held = json.loads(holder.stdout.readline())  # type: ignore[union-attr]
        assert held["events"] == first["events"]

        # a new visitor: after a refresh, the next snapshot has their events and profile
        device = track_visitor(server.collector_port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = read(snapshot, device)
            if now["device_profiles"]:
                break
            time.sleep(0.5)
        assert now["device_events"] == 1 and now["device_profiles"] == 1, now
        assert now["events"] == first["events"] + 1
        assert now["inode"] != held["inode"]  # a new file, renamed over the one held open

        # the holder still reads the snapshot it opened: the same file, the same rows
        holder.stdin.write("again\n")  # type: ignore[union-attr]
        holder.stdin.flush()  # type: ignore[union-attr]
        assert json.loads(holder.stdout.readline()) == {  # type: ignore[union-attr]
            k: v for k, v in held.items() if k != "inode"}  # fmt: skip
        assert holder.wait(timeout=30) == 0, holder.stderr.read()  # type: ignore[union-attr]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

    health = requests.get(f"{server.api}/health", timeout=5).json()
    assert health["snapshots"] >= 2 and health["snapshot_failures"] == 0, health
    # after its first dbt refresh, what the process holds for good (dbt's parsed project)
    # is left out of Python's full garbage collections (serving/memory.py, settle)
    assert health["gc_frozen"] > 10_000, health
    assert health["snapshot_path"] == str(snapshot)
    # nothing left behind but the warehouse, its snapshot and what they always have
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".warehouse")]
    assert leftovers == []
    assert server.stop() == 0
    assert os.path.getsize(snapshot) > 0


def test_a_slow_copy_spaces_out_the_next_one(tmp_path: Path) -> None:
    """The copies take at most ``max_share`` of the time: after one of D seconds, the next is
    due D x (1/share - 1) later (a copy slows the refreshes meanwhile), or ``min_seconds``
    later when that is longer."""
    import duckdb

    from serving.snapshot import Snapshot

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create table t as select range as i, md5(range::varchar) as s from range(50000)")
    snapshot = Snapshot(tmp_path / "warehouse.snapshot.duckdb", min_seconds=0, max_share=0.25)
    assert snapshot.due() and snapshot.publish(con)
    took = snapshot.seconds
    assert took > 0 and abs(snapshot.interval() - 3 * took) < 1e-9
    assert not snapshot.due()
    time.sleep(3 * took + 0.05)
    assert snapshot.due()

    hourly = Snapshot(tmp_path / "hourly.duckdb", min_seconds=3600, max_share=0.25)
    assert hourly.publish(con) and hourly.interval() == 3600 and not hourly.due()
    with duckdb.connect(str(hourly.path), read_only=True) as copy:
        assert copy.execute("select count(*) from t").fetchone() == (50000,)
    con.close()

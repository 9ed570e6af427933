"""``persona serve --simulate N`` (``make live``): synthetic visitors arrive through the
collector in real time, new ones and ones the warehouse knows, and the API reflects them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

from tests.conftest import ROOT
from tests.serving.conftest import TOKEN, copy_warehouse


@pytest.mark.slow
def test_simulated_visitors_arrive_through_the_collector_now(
    live, demo: Path, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        known = {
            d for (d,) in con.sql("select distinct domain_userid from atomic.events").fetchall()
        }
    started = datetime.now(UTC).replace(tzinfo=None)
    server = live("--simulate", "8", "--snapshot-seconds", "0", warehouse=warehouse)
    snapshot = tmp_path / "warehouse.snapshot.duckdb"

    deadline = time.monotonic() + 150
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        if snapshot.exists():
            with duckdb.connect(str(snapshot), read_only=True) as con:
                rows = con.execute(
                    "select domain_userid, collector_tstamp, dvce_created_tstamp "
                    "from atomic.events where app_id = 'persona-live'"
                ).fetchall()
            devices = {r[0] for r in rows}
            if devices & known and devices - known:
                break
        time.sleep(1)
    devices = {r[0] for r in rows}
    assert devices & known, "no returning visitor came back"
    assert devices - known, "no new visitor came"
    # stamped now, on the tracker's clock and on the collector's
    for _, collected, created in rows:
        assert started - timedelta(seconds=5) <= created <= collected + timedelta(seconds=5)

    # and the stream attributes show a returning visitor's latest visit
    device = next(iter(devices & known))
    body = {"attributes": ["recent_activity_v1:page_views_last_hour"],
            "attribute_keys": {"domain_userid": [device]}}  # fmt: skip
    got = requests.post(f"{server.api}/api/v1/get-online-attributes", json=body,
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)  # fmt: skip
    assert got.ok, got.text
    assert got.json()["page_views_last_hour"][0] >= 1
    assert server.stop() == 0


def test_simulate_needs_a_collector(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--source", "synthetic:?users=2&days=1",
         "--listen", "127.0.0.1:0", "--simulate", "1", "--state-dir", str(tmp_path / "s"),
         "--spool", str(tmp_path / "spool")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PERSONA_API_TOKEN": TOKEN,
             "PERSONA_DUCKDB": str(tmp_path / "w.duckdb")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--simulate posts to a collector" in done.stderr


def test_the_memory_limit_is_a_size_or_refused_naming_the_flag() -> None:
    from loader.errors import ConfigError
    from serving.live import check_memory_limit

    assert check_memory_limit(" 512MB ") == "512MB" and check_memory_limit("1.5GiB") == "1.5GiB"
    for bad in ("1GB'; drop table atomic.events; --", "lots", ""):
        with pytest.raises(ConfigError, match="--memory-limit"):
            check_memory_limit(bad)

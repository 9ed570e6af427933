"""The live mode's daily retention step (serving.live.Live._retention): old rows deleted with
the loader and the refresh paused, then the realtime models rebuilt from what remains, so no
derived row outlives the events it came from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from privacy.live import LiveForget
from privacy.retention import Rule
from serving.batch import BatchSync
from serving.live import Live, Refresher, Settings
from serving.stores.memory import MemoryStore
from serving.stream import StreamEngine
from tests.serving.conftest import copy_warehouse

AS_OF = {"as_of": "latest_event"}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_the_daily_step_deletes_old_rows_and_rebuilds_the_models(
    demo: Path, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(demo, tmp_path / "warehouse.duckdb")
    settings = Settings(source="-", listen="127.0.0.1:0", warehouse=str(warehouse), token="t",
                        state_dir=tmp_path / "state", dbt_vars=AS_OF)  # fmt: skip
    con = duckdb.connect(str(warehouse))
    store = MemoryStore()
    refresher = Refresher(settings, BatchSync(store), con)
    assert refresher.refresh()  # dbt; then a plan
    newest, oldest = con.execute(
        "select max(collector_tstamp), min(collector_tstamp) from atomic.events"
    ).fetchone()
    # keep the demo's last days, whenever its events were made
    keep = (utcnow() - newest).days + 3
    settings.retention = [Rule("atomic.events", timedelta(days=keep))]

    forgetter = LiveForget(str(warehouse), con, store, StreamEngine(store))
    Live(settings)._retention(forgetter, refresher)

    now_oldest = con.execute("select min(collector_tstamp) from atomic.events").fetchone()[0]
    assert now_oldest > oldest
    # nothing derived outlives its events: the full rebuild ran (a replay would keep them)
    gone = con.execute(
        "select count(*) from derived.events where event_id not in "
        "(select event_id from atomic.events)"
    ).fetchone()[0]
    assert gone == 0
    orphans = con.execute(
        # derived.events: an app event's session is its client_session's, as in sessions
        "select count(*) from derived.sessions as s where not exists (select 1 from "
        "derived.events as e where e.domain_sessionid = s.domain_sessionid)"
    ).fetchone()[0]
    assert orphans == 0
    assert refresher.plan is None  # a full rebuild's SQL is no plan for the next refresh
    con.close()

"""The live process's warehouse checkpoints while it runs.

DuckDB checkpoints only when no other transaction is open, and a query result left unread on
a long-lived connection holds its transaction open: reading the suppression list with
``fetchone()`` at start left one on the live process's connection, after which no checkpoint
(DuckDB's own or the refresh loop's) ever succeeded, and the WAL and DuckDB's memory grew for
as long as the process ran."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from privacy.consent import ENV as CONSENT_ENV
from privacy.suppression import Suppression
from serving import live
from serving.live import DuckDBWarehouse, Settings


def _write(con: duckdb.DuckDBPyConnection, rows: int, commits: int = 1) -> None:
    """``commits`` small inserts: each goes through the WAL (a big one is written straight
    to the file)."""
    cur = con.cursor()
    cur.execute("create table if not exists t (i bigint, s varchar)")
    for _ in range(commits):
        cur.execute("insert into t select range, repeat('x', 200) from range(?)", [rows])
    cur.close()


@pytest.mark.parametrize("consent", ["keep", "pseudonymize"])
def test_reading_the_suppression_list_leaves_no_transaction_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, consent: str
) -> None:
    monkeypatch.setenv(CONSENT_ENV, consent)
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))  # the live process's connection, and the loader's
    Suppression.from_duckdb(path, con)
    _write(duckdb.connect(str(path)), 1000)  # another connection of the process commits
    con.cursor().execute("checkpoint")  # raised "there are other write transactions active"


def test_the_refresh_loop_checkpoints_once_the_wal_is_big(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "CHECKPOINT_WAL_BYTES", 2**20)
    path = tmp_path / "w.duckdb"
    wh = DuckDBWarehouse(Settings(source="-", listen="127.0.0.1:1", warehouse=str(path),
                                  token="t", snapshot=None))  # fmt: skip
    # DuckDB's own checkpoint (at 16 MB of WAL) out of the way: the loop's is tested
    wh.con.execute("set checkpoint_threshold = '1GB'")
    Suppression.from_duckdb(path, wh.con)  # as LiveForget does at start, then nothing on it
    wal = Path(f"{path}.wal")
    _write(wh.con, 100)
    wh._checkpoint_if_due()
    assert wh.checkpoints == 0 and wal.exists()  # a small WAL waits
    _write(wh.con, 1000, commits=20)
    assert wal.stat().st_size > 2**20
    wh._checkpoint_if_due()
    assert wh.checkpoints == 1 and wh.checkpoints_deferred == 0
    assert not wal.exists() or wal.stat().st_size < 2**20
    assert wh.status()["checkpoints"] == 1
    wh.close()

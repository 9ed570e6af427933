"""``persona forget`` on a real DuckDB warehouse built by the real dbt project: every trace of
the user and of every device stitched to them goes, other people's data stays, the request is
audited without the id, and a request killed halfway resumes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from persona.cli import main as persona
from privacy import forget as fg
from privacy import ledger
from privacy.salt import hash_id
from tests.conftest import ROOT
from tests.privacy.conftest import SALT, Built, holders


def resolved(path: Path, user: str) -> set[str]:
    with duckdb.connect(str(path)) as con:
        return fg.resolve(con.cursor(), [user]).ids


def counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path)) as con:
        tables = con.execute("select table_schema, table_name from information_schema.tables "
                             "where table_type = 'BASE TABLE'").fetchall()  # fmt: skip
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
                for s, t in tables}  # fmt: skip


def test_forget_leaves_no_table_or_view_holding_the_user_or_their_devices(
    built: Built,
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = resolved(warehouse, built.user)
    with duckdb.connect(str(warehouse)) as con:
        devices = {r[0] for r in con.execute(
            "select device_id from derived.identity_map where user_id = ?", [built.user]
        ).fetchall()}  # fmt: skip
        assert holders(con, ids)  # the scan finds them before: it can fail
        other_events = con.execute("select count(*) from atomic.events where user_id = ?",
                                   [built.other]).fetchone()[0]  # fmt: skip
    # the closure: the user's devices, the shared one, the second device, their sessions
    assert devices <= ids and built.shared_device in ids and len(ids) > len(devices) + 3
    assert fg.ANONYMOUS_NUID not in ids
    before = counts(warehouse)
    monkeypatch.setenv("PERSONA_DUCKDB", str(warehouse))
    assert persona(["forget", "--user-id", built.user]) == 0
    out = capsys.readouterr().out
    assert "done" in out and built.user not in out
    with duckdb.connect(str(warehouse)) as con:
        assert holders(con, ids) == []
        # the other user keeps their events, but not those on the shared device
        left = con.execute("select count(*) from atomic.events where user_id = ?",
                           [built.other]).fetchone()[0]  # fmt: skip
        assert 0 < left < other_events
        # failed events: only the lines carrying the ids went
        raw = [r[0] for r in con.execute("select raw from atomic.failed_events").fetchall()]
        assert any("someone-else" in r for r in raw)
        (row,) = con.execute(
            f"select id_hash, status, rows_removed from {ledger.REQUESTS}"
        ).fetchall()
        assert row[0] == hash_id(SALT.encode(), built.user) and row[1] == "done"
    after = counts(warehouse)
    removed = {t: before[t] - after.get(t, 0) for t in before if before[t] != after.get(t, 0)}
    assert removed["atomic.events"] > 0 and removed["derived.sessions"] > 0
    assert removed["atomic.failed_events"] == 2
    # everyone else is still there
    assert after["atomic.events"] > before["atomic.events"] / 2


def test_preview_on_a_read_only_connection_counts_what_the_forget_removes(
    built: Built, warehouse: Path
) -> None:
    """The dashboard's "what will be deleted": counted read-only, then equal, table by table,
    to what the forget removes (its audit row)."""
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        shown = fg.preview(con.cursor(), built.user)
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before
    assert shown.rows["atomic.events"] > 0 and shown.rows["atomic.failed_events"] == 2
    assert shown.ids_resolved == len(resolved(warehouse, built.user))
    with duckdb.connect(str(warehouse)) as con:
        outcome = fg.forget(con, fg.Ids("user_id", built.user), "delete_only", SALT.encode())
    removed = outcome.request.rows_removed
    assert {t: n for t, n in removed.items() if n} == shown.rows | shown.emptied
    assert shown.emptied  # the hourly aggregates, rebuilt by the next refresh
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert fg.preview(con.cursor(), built.user).rows == {}


def test_compacted_file_no_longer_holds_the_user(
    built: Built, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB keeps deleted rows' bytes in its file: a checkpoint frees their blocks but does
    not overwrite them. ``--compact`` rewrites the file; its bytes are then searched for the
    user's device ids (uuids: no accidental matches)."""
    devices = {i for i in resolved(warehouse, built.user) if len(i) == 36}
    assert any(d.encode() in warehouse.read_bytes() for d in devices)  # the check can fail
    monkeypatch.setenv("PERSONA_DUCKDB", str(warehouse))
    assert persona(["forget", "--user-id", built.user, "--compact"]) == 0
    data = warehouse.read_bytes()
    assert [d for d in devices if d.encode() in data] == []
    with duckdb.connect(str(warehouse)) as con:  # the rest is intact
        assert con.execute("select count(*) from derived.sessions").fetchone()[0] > 0
        assert con.execute(f"select status from {ledger.REQUESTS}").fetchone()[0] == "done"


def test_unknown_id_and_sql_fragment_are_literals_and_recorded(
    warehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = counts(warehouse)
    for value in ("nobody-at-all", "x' or '1'='1", "'); drop table atomic.events; --", "%"):
        with duckdb.connect(str(warehouse)) as con:
            outcome = fg.forget(con, fg.Ids("user_id", value), "suppress_with_delete",
                                SALT.encode())  # fmt: skip
        assert outcome.request.status == ledger.NOTHING, value
        assert "nothing found" in outcome.line()
    after = counts(warehouse)
    assert {t: n for t, n in after.items() if not t.startswith("privacy.")} == before
    with duckdb.connect(str(warehouse)) as con:
        statuses = [r[0] for r in con.execute(f"select status from {ledger.REQUESTS}").fetchall()]
    assert statuses == [ledger.NOTHING] * 4


def test_empty_id_and_locked_warehouse_fail_clearly(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    duckdb_holder,
) -> None:  # fmt: skip
    monkeypatch.setenv("PERSONA_DUCKDB", str(warehouse))
    assert persona(["forget", "--user-id", " "]) == 2
    assert "--user-id" in capsys.readouterr().err
    holder = duckdb_holder(warehouse)
    assert persona(["forget", "--user-id", "u1"]) == 3
    err = capsys.readouterr().err
    assert f"PID {holder.pid}" in err and "--api http://HOST:PORT" in err
    assert "nothing was changed" in err


KILLER = """
import os, signal, sys
import duckdb
from privacy import forget as fg
con = duckdb.connect(sys.argv[1])
seen = []
def after(table):
    seen.append(table)
    if len(seen) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
fg.forget(con, fg.Ids("user_id", sys.argv[2]), "suppress_with_delete", sys.argv[4].encode(),
          after_table=after)
"""


def test_kill_9_halfway_is_recorded_and_resumed(built: Built, warehouse: Path) -> None:
    ids = resolved(warehouse, built.user)
    proc = subprocess.run([sys.executable, "-c", KILLER, str(warehouse), built.user, "4", SALT],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.returncode == -9
    with duckdb.connect(str(warehouse)) as con:
        (row,) = con.execute(
            f"select status, stopped_at, rows_removed from {ledger.REQUESTS}"
        ).fetchall()
        status, stopped_at, done = row
        assert status == ledger.RUNNING and stopped_at  # where it stopped
        assert len(__import__("json").loads(done)) == 4
        assert holders(con, ids)  # half done
    with duckdb.connect(str(warehouse)) as con:
        outcome = fg.forget(con, fg.Ids("user_id", built.user), "suppress_with_delete",
                            SALT.encode())  # fmt: skip
        assert outcome.resumed and outcome.request.status == ledger.DONE
        assert con.execute(f"select count(*) from {ledger.REQUESTS}").fetchone()[0] == 1
        assert holders(con, ids) == []


def test_status_lists_requests_without_ids(
    built: Built, warehouse: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("PERSONA_DUCKDB", str(warehouse))
    ids = warehouse.parent / "ids.txt"
    ids.write_text(f"{built.other}\nnot-a-user\n")
    assert persona(["forget", "--file", str(ids), "--mode", "suppress_only"]) == 0
    assert persona(["forget", "--user-id", built.other, "--mode", "unsuppress"]) == 0
    capsys.readouterr()
    assert persona(["forget", "--status"]) == 0
    out = capsys.readouterr().out
    assert out.count("suppress_only") == 2 and "unsuppress" in out
    assert built.other not in out and "not-a-user" not in out
    with duckdb.connect(str(warehouse)) as con:  # the other's suppression was lifted
        left = con.execute(f"select count(*) from {ledger.SUPPRESSED}").fetchone()[0]
    assert left == 1  # not-a-user's

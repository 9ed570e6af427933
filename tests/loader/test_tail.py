"""``tail:PATH`` as a user runs it: a loader process following a file another process writes,
stopped with SIGTERM, restarted, and never loading a committed line twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from loader.sources.synthetic import SyntheticConfig, generate_lines
from tests.conftest import ROOT


def count(db: Path) -> tuple[int, int]:
    con = duckdb.connect(str(db))
    try:
        return con.execute(
            "select count(*), count(distinct event_id) from atomic.events"
        ).fetchone()
    finally:
        con.close()


def follow(path: Path, db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loader", "--source", f"tail:{path}", "--sink", f"duckdb:{db}",
         "--batch-seconds", "0.2", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str], path: Path) -> str:
    """SIGTERM once every whole line of ``path`` is committed (the checkpoint says so), so a
    slow start on a busy machine cannot be mistaken for a lost line."""
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1
    checkpoint = Path(f"{path}.persona-checkpoint")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and checkpoint.read_text().strip() == str(whole):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def test_follows_a_growing_file_and_resumes_after_a_restart(tmp_path: Path) -> None:
    lines = list(generate_lines(SyntheticConfig(users=60, days=3, seed=5)))
    assert len(lines) > 300
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text("\n".join(lines[:100]) + "\n")
    proc = follow(path, db)
    time.sleep(1.5)
    with path.open("a") as fh:  # the writer appends, one line in two halves
        fh.write("\n".join(lines[100:200]) + "\n" + lines[200][:50])
        fh.flush()
        time.sleep(0.5)
        fh.write(lines[200][50:] + "\n")
    assert "loaded 201 events (0 failed)" in stop(proc, path)
    with path.open("a") as fh:  # more lines while no loader runs
        fh.write("\n".join(lines[201:300]) + "\n")
    proc = follow(path, db)
    assert "loaded 99 events (0 failed)" in stop(proc, path)  # only the new ones
    distinct = len({line.split("\t")[6] for line in lines[:300]})  # the stream has duplicates
    assert count(db) == (300, distinct)

"""``tail:PATH`` as a user runs it: a loader process following a file another process writes,
rotated (``mv``) or truncated under it, stopped with SIGTERM, restarted, and never loading a
committed line twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from loader import offsets
from loader.errors import ConfigError
from loader.sources.synthetic import SyntheticConfig, generate_lines
from loader.sources.tail import TailSource
from tests.conftest import ROOT

LINES = list(generate_lines(SyntheticConfig(users=60, days=3, seed=5)))


def loaded(db: Path) -> Counter[str]:
    """How many times each event_id is in the warehouse."""
    con = duckdb.connect(str(db))
    try:
        return Counter(r[0] for r in con.execute("select event_id from atomic.events").fetchall())
    finally:
        con.close()


def ids(lines: list[str]) -> Counter[str]:
    return Counter(line.split("\t")[6] for line in lines)  # the stream has duplicates


def count(db: Path) -> tuple[int, int]:
    seen = loaded(db)
    return sum(seen.values()), len(seen)


def text(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def follow(path: Path, db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loader", "--source", f"tail:{path}", "--sink", f"duckdb:{db}",
         "--batch-seconds", "0.2", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    RUNNING.append(proc)
    return proc


RUNNING: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _kill_leftovers() -> Iterator[None]:
    """A failed assertion must not leave a loader running."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def committed(path: Path) -> bool:
    """Whether the checkpoint is at the last whole line of the file ``path`` names now (a
    checkpoint from before file identities were kept is a bare offset)."""
    checkpoint = Path(f"{path}.persona-checkpoint")
    try:
        saved = json.loads(checkpoint.read_text())
        st = path.stat()
    except (FileNotFoundError, ValueError):
        return False
    whole = path.read_bytes().rfind(b"\n") + 1
    if isinstance(saved, int):
        return saved == whole
    return (saved["offset"], saved["device"], saved["inode"]) == (whole, st.st_dev, st.st_ino)


def wait_committed(proc: subprocess.Popen[str], path: Path, timeout: float = 60) -> None:
    """Until every whole line of ``path`` is committed, so that a slow start on a busy machine
    cannot be mistaken for a lost line (a timeout is left to the count checks to report)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not committed(path):
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str], path: Path) -> tuple[str, str]:
    """SIGTERM once every whole line of ``path`` is committed; the loader's stdout and stderr."""
    wait_committed(proc, path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return out, err


def test_follows_a_growing_file_and_resumes_after_a_restart(tmp_path: Path) -> None:
    assert len(LINES) > 300
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text(text(LINES[:100]))
    proc = follow(path, db)
    time.sleep(1.5)
    with path.open("a") as fh:  # the writer appends, one line in two halves
        fh.write(text(LINES[100:200]) + LINES[200][:50])
        fh.flush()
        time.sleep(0.5)
        fh.write(LINES[200][50:] + "\n")
    assert "loaded 201 events (0 failed)" in stop(proc, path)[0]
    with path.open("a") as fh:  # more lines while no loader runs
        fh.write(text(LINES[201:300]))
    proc = follow(path, db)
    assert "loaded 99 events (0 failed)" in stop(proc, path)[0]  # only the new ones
    assert count(db) == (300, len(ids(LINES[:300])))


def test_follows_rotation_and_loads_every_line_once(tmp_path: Path) -> None:
    """``mv events.tsv events.tsv.1`` and a new ``events.tsv``, twice, with a writer that goes
    on appending to the old file until it reopens the path, as a logger does."""
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text(text(LINES[:100]))
    proc = follow(path, db)
    wait_committed(proc, path)
    old = path.open("a")  # the writer's open file
    path.rename(tmp_path / "events.tsv.1")
    old.write(text(LINES[100:150]))  # it has not noticed the rotation
    old.flush()
    path.touch()  # logrotate's "create": a new, empty file
    time.sleep(1)
    old.write(text(LINES[150:175]))  # still not reopened
    old.close()
    with path.open("a") as fh:  # reopened: from now on it writes the new file
        fh.write(text(LINES[175:250]) + LINES[250][:40])
        fh.flush()
        time.sleep(0.5)
        fh.write(LINES[250][40:] + "\n")
    wait_committed(proc, path)
    with path.open("a") as fh:  # a second rotation, straight after the last lines
        fh.write(text(LINES[251:300]))
    path.rename(tmp_path / "events.tsv.2")
    path.write_text(text(LINES[300:350]))
    out, _ = stop(proc, path)
    assert "loaded 350 events (0 failed)" in out
    assert loaded(db) == ids(LINES[:350])
    with path.open("a") as fh:  # the checkpoint names the new file: a restart goes on in it
        fh.write(text(LINES[350:400]))
    out, err = stop(follow(path, db), path)
    assert "loaded 50 events (0 failed)" in out
    assert "rotated while the loader was stopped" not in err
    assert loaded(db) == ids(LINES[:400])


def test_a_moved_file_is_read_on_until_a_new_one_appears(tmp_path: Path) -> None:
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text(text(LINES[:100]))
    proc = follow(path, db)
    wait_committed(proc, path)
    with path.open("a") as old:
        path.rename(tmp_path / "events.tsv.1")  # and no new file for a while
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()[1]
        old.write(text(LINES[100:130]) + LINES[130][:60])  # the writer still has it open...
    time.sleep(1.5)
    path.write_text(text(LINES[131:200]))  # ...and never finishes that line
    out, err = stop(proc, path)
    assert "loaded 199 events (1 failed)" in out
    assert err.count("is gone") == 1, err  # said once, not every poll
    assert loaded(db) == ids(LINES[:130] + LINES[131:200])
    con = duckdb.connect(str(db))
    failed = con.execute("select raw, error_type, source from atomic.failed_events").fetchall()
    con.close()
    assert failed == [(LINES[130][:60], "incomplete_line", f"tail:{path}")]  # kept, not dropped


def test_a_restart_after_rotation_reads_the_new_file_from_its_start(tmp_path: Path) -> None:
    """The checkpoint's offset belongs to the old file: seeking it in the new one skipped the
    new file's first lines (and cut one in half)."""
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text(text(LINES[:100]))
    assert "loaded 100 events" in stop(follow(path, db), path)[0]
    offset = path.stat().st_size
    with path.open("a") as fh:  # while no loader runs: lines it cannot know of...
        fh.write(text(LINES[100:110]))
    path.rename(tmp_path / "events.tsv.1")  # ...in a file rotated away
    path.write_text(text(LINES[110:300]))  # longer than the old offset
    out, err = stop(follow(path, db), path)
    assert "loaded 190 events (0 failed)" in out
    assert f"lines written to the old file after byte {offset} may not have been loaded" in err
    assert loaded(db) == ids(LINES[:100] + LINES[110:300])


def test_a_file_truncated_in_place_is_read_again_from_its_start(tmp_path: Path) -> None:
    path, db = tmp_path / "events.tsv", tmp_path / "w.duckdb"
    path.write_text(text(LINES[:100]))
    proc = follow(path, db)
    wait_committed(proc, path)
    inode = path.stat().st_ino
    with path.open("r+") as fh:  # truncated, same inode, then shorter content
        fh.truncate(0)
        fh.write(text(LINES[100:150]))
    out, err = stop(proc, path)
    assert "loaded 150 events (0 failed)" in out and "shrank below" in err
    with path.open("r+") as fh:  # and again while no loader runs
        fh.truncate(0)
        fh.write(text(LINES[150:170]))
    assert path.stat().st_ino == inode
    out, err = stop(follow(path, db), path)
    assert "loaded 20 events (0 failed)" in out
    assert "rotated while the loader was stopped" not in err
    assert loaded(db) == ids(LINES[:170])


def test_positions_name_the_file_and_older_forms_still_read(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv"
    path.write_text(text(LINES[:3]))
    st, first = path.stat(), len(LINES[0]) + 1
    checkpoint = Path(f"{path}.persona-checkpoint")

    def read(source: TailSource) -> int:
        source.stop()  # read what is there, then end
        return sum(1 for item in source if item is not None)

    checkpoint.write_text(str(first))  # a checkpoint from before: a bare offset
    source = TailSource(str(path))
    assert read(source) == 2
    assert source.position() == offsets.token("tail", st.st_size, st.st_dev, st.st_ino)
    source.commit()
    saved = {"offset": st.st_size, "device": st.st_dev, "inode": st.st_ino}
    assert json.loads(checkpoint.read_text()) == saved
    source.seek(offsets.token("tail", first))  # a warehouse's token from before
    assert read(source) == 2
    source.seek(offsets.token("tail", first, st.st_dev, st.st_ino + 1))  # another file's
    assert read(source) == 3
    with pytest.raises(ConfigError, match="tail:OFFSET:DEVICE:INODE"):
        source.seek(offsets.token("tail", 1, 2))
    checkpoint.write_text("{}")
    with pytest.raises(ConfigError, match="delete it"):
        TailSource(str(path))
    # a sink waits for its own batch's token: an offset in another file is no sign of it
    old, new = offsets.token("tail", 900, 1, 7), offsets.token("tail", 10, 1, 8)
    assert not offsets.reached(old, new) and not offsets.reached(new, old)
    assert offsets.reached(offsets.token("tail", 20, 1, 8), new)
    assert not offsets.reached(offsets.token("tail", 5, 1, 8), new)
    assert offsets.reached(offsets.token("tail", 9), offsets.token("tail", 9))


def test_a_missing_file_is_waited_for_with_one_word(tmp_path: Path, caplog) -> None:
    """``tail:`` on a path that does not exist yet says once that it waits, then waits."""
    import logging

    source = TailSource(str(tmp_path / "later.tsv"), idle_seconds=0.01)
    items = iter(source)
    with caplog.at_level(logging.INFO, logger="persona.tail"):
        assert [next(items) for _ in range(5)] == [None] * 5
    waiting = [r for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waiting) == 1 and str(tmp_path / "later.tsv") in waiting[0].getMessage()
    source.stop()
    assert list(items) == []

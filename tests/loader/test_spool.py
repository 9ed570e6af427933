"""The collector's spool: durable appends, ordered reads, checkpoints, rotation, backpressure."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from loader import spool as spool_module
from loader.spool import Position, Spool, SpoolFull


def drain(s: Spool, start: Position) -> list[tuple[Position, dict]]:
    stop = threading.Event()
    stop.set()  # read what is there, then end
    return [item for item in s.read(start, stop, idle=0.01) if item is not None]


def test_appends_are_read_back_in_order_and_resume_from_the_checkpoint(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    for i in range(5):
        s.append([{"n": i}, {"n": i + 100}]).result(timeout=5)
    items = drain(s, s.committed)
    assert [r["n"] for _, r in items] == [0, 100, 1, 101, 2, 102, 3, 103, 4, 104]
    s.commit(items[3][0])  # the warehouse has the first four
    s.close()
    again = Spool(tmp_path)  # a restarted process
    assert [r["n"] for _, r in drain(again, again.committed)] == [2, 102, 3, 103, 4, 104]
    again.close()


def test_segments_rotate_and_committed_ones_are_deleted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 200)
    s = Spool(tmp_path)
    for i in range(30):
        s.append([{"n": i, "pad": "x" * 20}]).result(timeout=5)
    assert len(list(tmp_path.glob("spool-*.jsonl"))) > 3
    items = drain(s, s.committed)
    assert [r["n"] for _, r in items] == list(range(30))
    s.commit(items[-1][0])
    assert len(list(tmp_path.glob("spool-*.jsonl"))) <= 2  # only the current one(s) remain
    s.close()


def test_backpressure_when_too_much_is_not_yet_loaded(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_pending_bytes=100)
    s.append([{"pad": "x" * 150}]).result(timeout=5)
    with pytest.raises(SpoolFull, match="not keeping up"):
        s.append([{"n": 1}])
    items = drain(s, s.committed)
    s.commit(items[-1][0])  # the warehouse caught up
    s.append([{"n": 2}]).result(timeout=5)
    s.close()


def test_a_half_written_record_from_a_crash_is_cut_not_glued(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.append([{"n": 1}]).result(timeout=5)
    s.close()
    segment = next(tmp_path.glob("spool-*.jsonl"))
    with segment.open("ab") as fh:  # killed mid-write: never acknowledged
        fh.write(b'{"n": 2, "pad": "xx')
    again = Spool(tmp_path)
    again.append([{"n": 3}]).result(timeout=5)
    assert [r["n"] for _, r in drain(again, again.committed)] == [1, 3]
    again.close()


def test_the_writer_outlives_a_segment_it_cannot_open(tmp_path: Path, monkeypatch) -> None:
    """No file handles left (EMFILE) when a segment is full: the writer keeps the current one
    and rotates later, and every append still completes (a dead writer thread would leave
    every later request waiting for ever)."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 200)
    s = Spool(tmp_path)
    real, failing = spool_module._private, {"on": True}

    def opener(path: Path, flags: int = spool_module.os.O_APPEND):
        if failing["on"] and path != s._path:
            raise OSError(24, "Too many open files")
        return real(path, flags)

    monkeypatch.setattr(spool_module, "_private", opener)
    for i in range(10):
        s.append([{"n": i, "pad": "x" * 40}]).result(timeout=5)
    assert len(list(tmp_path.glob("spool-*.jsonl"))) == 1  # could not rotate: wrote on
    failing["on"] = False
    for i in range(10, 20):
        s.append([{"n": i, "pad": "x" * 40}]).result(timeout=5)
    assert len(list(tmp_path.glob("spool-*.jsonl"))) > 1  # rotated once it could
    assert [r["n"] for _, r in drain(s, s.committed)] == list(range(20))
    s.close()


def test_a_failed_write_is_cut_and_the_next_one_lands_whole(tmp_path: Path, monkeypatch) -> None:
    """A write that fails half-way (a full disk) fails its requests, leaves no half record
    behind, and the writer goes on once the disk has room."""
    s = Spool(tmp_path)
    s.append([{"n": 0}]).result(timeout=5)
    fsync, full = spool_module.os.fsync, {"on": True}

    def flaky_fsync(fd: int) -> None:
        if full["on"]:
            full["on"] = False
            raise OSError(28, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", flaky_fsync)
    with pytest.raises(OSError, match="No space"):
        s.append([{"n": 1, "pad": "lost"}]).result(timeout=5)
    s.append([{"n": 2}]).result(timeout=5)
    assert [r["n"] for _, r in drain(s, s.committed)] == [0, 2]
    s.close()

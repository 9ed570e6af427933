"""An append-only local spool: the collector acknowledges a request once its events are here.

Records are JSON lines in segment files (``spool-00000001.jsonl``, ...). Writers hand records
to one writer thread, which writes whatever has queued up and fsyncs once for all of them
(group commit), so durability costs one fsync per burst rather than per request. The loader
reads the spool in order and, after each warehouse commit, stores the position it has reached
in ``checkpoint.json`` (written atomically): a restarted loader resumes there, so an
acknowledged event is never lost, and at worst the batch in flight is loaded twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from loader.errors import SourceError
from loader.metrics import METRICS
from loader.settings import DEFAULT

#: One spooled record: a request's context and payload, as JSON.
Record = dict[str, Any]

SEGMENT_BYTES = 64 * 1024 * 1024

log = logging.getLogger("persona.spool")


@dataclass(frozen=True, order=True)
class Position:
    """Where a reader is: a segment number and a byte offset in it."""

    segment: int = 1
    offset: int = 0


class SpoolFull(Exception):
    """More is spooled and not yet committed than the limit allows: shed load (HTTP 503)."""


class Spool:
    """``writer=False`` opens the spool only to read it and move the checkpoint, while another
    process (the collector's HTTP process) appends to it."""

    def __init__(
        self,
        directory: str | Path,
        max_pending_bytes: int = DEFAULT.spool_max_bytes,
        writer: bool = True,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_pending_bytes = max_pending_bytes
        self.writer = writer
        self.committed = self.read_checkpoint()
        if not writer:
            return
        segments = sorted(self.dir.glob("spool-*.jsonl"))
        self._segment = int(segments[-1].stem.split("-")[1]) if segments else 1
        self._path = self._segment_path(self._segment)
        _drop_partial_line(self._path)
        for old in self.dir.iterdir():  # spooled by an older version, or copied in
            if old.is_file() and old.stat().st_mode & 0o077:
                old.chmod(0o600)
        self._fh = _private(self._path)
        self._written = Position(self._segment, self._fh.tell())
        self._queue: queue.Queue[tuple[list[bytes], concurrent.futures.Future[None]] | None] = (
            queue.Queue()
        )
        self._writer = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._writer.start()

    def _segment_path(self, segment: int) -> Path:
        return self.dir / f"spool-{segment:08d}.jsonl"

    # -- writing -------------------------------------------------------------------------------

    def pending_bytes(self) -> int:
        """Spooled but not yet committed to the warehouse (segments count as full)."""
        written, committed = self._written, self.committed
        if written.segment == committed.segment:
            return written.offset - committed.offset
        middle = (written.segment - committed.segment - 1) * SEGMENT_BYTES
        return (SEGMENT_BYTES - committed.offset) + middle + written.offset

    def append(self, records: list[Record]) -> concurrent.futures.Future[None]:
        """Queue records; the future completes once they are on disk (fsynced)."""
        if self.pending_bytes() > self.max_pending_bytes:
            raise SpoolFull(
                f"{self.pending_bytes():,} bytes spooled and not yet loaded (limit "
                f"{self.max_pending_bytes:,}): the warehouse is not keeping up"
            )
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        lines = [_dumps(r) + b"\n" for r in records]
        self._queue.put((lines, done))
        return done

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while True:  # take everything that queued up meanwhile: one fsync for all
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                group.append(more)
            try:
                for lines, _ in group:
                    self._fh.writelines(lines)
                self._fh.flush()
                started = time.perf_counter()
                os.fsync(self._fh.fileno())
                METRICS.observe_fsync(time.perf_counter() - started)
                self._written = Position(self._segment, self._fh.tell())
            except Exception as exc:  # this thread outlives any failure: its callers wait on it
                self._undo_partial()
                for _, done in group:
                    done.set_exception(exc)
                continue
            for _, done in group:  # on disk: acknowledged, whatever the rotation does
                done.set_result(None)
            if self._written.offset >= SEGMENT_BYTES:
                self._rotate()

    def _undo_partial(self) -> None:
        """After a failed write (a full disk): the file reopened without what its buffer still
        held, and cut back to the last write that succeeded, so the next write starts a line
        rather than gluing onto half a record. The failed requests are retried by their
        clients (the collector answered 500); if the file cannot be reopened now, the next
        write fails the same way and tries again."""
        # its buffer's flush fails again: the bytes it held are dropped with it
        with contextlib.suppress(OSError, ValueError):
            self._fh.close()
        try:
            os.truncate(self._path, self._written.offset)
            self._fh = _private(self._path)
        except OSError as exc:
            log.warning("spool: could not reopen %s after a failed write: %s", self._path, exc)

    def _rotate(self) -> None:
        """The next segment, opened before the current one is closed: when it cannot be opened
        (no file handles, a full disk) the writer goes on in the current segment and tries
        again after the next write, rather than being left with no file."""
        path = self._segment_path(self._segment + 1)
        try:
            fh = _private(path)
        except OSError as exc:
            log.warning("spool: could not start %s (%s); writing on in %s", path.name, exc,
                        self._path.name)  # fmt: skip
            return
        self._fh.close()
        self._segment += 1
        self._path, self._fh = path, fh
        self._written = Position(self._segment, 0)

    def close(self) -> None:
        if not self.writer:
            return
        self._queue.put(None)
        self._writer.join(timeout=10)
        self._fh.close()

    # -- reading -------------------------------------------------------------------------------

    def read(
        self, start: Position, stop: threading.Event, idle: float = 0.1
    ) -> Iterator[tuple[Position, Record] | None]:
        """Records from ``start`` on, each with the position after it; ``None`` while idle.

        Ends when ``stop`` is set and everything written so far has been read."""
        position = start
        fh = (
            self._segment_path(position.segment).open("rb")
            if self._segment_path(position.segment).exists()
            else None
        )
        if fh is not None:
            fh.seek(position.offset)
        while True:
            line = fh.readline() if fh is not None else b""
            if line.endswith(b"\n"):
                position = Position(position.segment, position.offset + len(line))
                try:
                    record = orjson.loads(line)
                except ValueError:  # cannot happen after _drop_partial_line; never wedge on it
                    record = {"t": 0, "bad": line.decode("utf-8", "backslashreplace"),
                              "error": "unreadable spool record"}  # fmt: skip
                yield position, record
                continue
            if fh is not None and line:  # a partial line: the writer is mid-write
                fh.seek(position.offset)
            next_path = self._segment_path(position.segment + 1)
            if next_path.exists():  # the writer rotated: this segment is complete...
                if fh is not None:
                    rest = fh.read()  # ...but may have grown since the read above
                    if rest:
                        fh.seek(position.offset)
                        continue
                    fh.close()
                position = Position(position.segment + 1, 0)
                fh = next_path.open("rb")
                continue
            if fh is None and self._segment_path(position.segment).exists():
                fh = self._segment_path(position.segment).open("rb")
                fh.seek(position.offset)
                continue
            if stop.is_set() and self._drained(position):
                if fh is not None:
                    fh.close()
                return
            yield None
            time.sleep(idle)

    def _drained(self, position: Position) -> bool:
        """Everything written has been read (a reader alone: stop is set once the writing
        process has exited, and the read above found the end of the last segment)."""
        if not self.writer:
            return True
        return self._queue.empty() and position >= self._written

    # -- checkpoint ----------------------------------------------------------------------------

    def read_checkpoint(self) -> Position:
        path = self.dir / "checkpoint.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return Position(1, 0)
        return Position(int(data["segment"]), int(data["offset"]))

    def commit(self, position: Position) -> None:
        """Record that everything before ``position`` is in the warehouse; drop done segments."""
        tmp = self.dir / "checkpoint.json.tmp"
        with _private(tmp, os.O_TRUNC) as fh:
            fh.write(orjson.dumps({"segment": position.segment, "offset": position.offset}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "checkpoint.json")
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.committed = position
        for segment in range(1, position.segment):
            self._segment_path(segment).unlink(missing_ok=True)


def _private(path: Path, flags: int = os.O_APPEND) -> BinaryIO:
    """Open for writing, readable by this user alone: the spool holds what clients sent."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
    return os.fdopen(fd, "ab" if flags & os.O_APPEND else "wb")


def _dumps(record: Record) -> bytes:
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:  # a lone surrogate: the stdlib writes it as an escape
        return json.dumps(record, separators=(",", ":")).encode()


def _drop_partial_line(path: Path) -> None:
    """A crash mid-write can leave a segment ending in half a record, never acknowledged: cut it,
    so the next record does not get glued onto it."""
    if not path.exists():
        return
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return
        data_end = size
        step = 64 * 1024
        while data_end > 0:
            start = max(0, data_end - step)
            fh.seek(start)
            chunk = fh.read(data_end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                return
            data_end = start
        fh.truncate(0)


def lock_writer(directory: str | Path, wait: float) -> BinaryIO:
    """Take the spool's writer lock (``writer.lock``, held until the file is closed) and write
    this process's and its parent's PIDs into it, or raise ``SourceError`` naming the holder.

    Two writers would interleave records; a second collector must hear so at once rather than
    wait. ``wait`` covers the one case worth waiting for: a collector left over from a killed
    loader, which exits within moments of noticing (it watches its parent)."""
    path = Path(directory) / "writer.lock"
    fh = path.open("a+b")  # not "w": that would blank the holder's PIDs before we hold the lock
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                raise SourceError(
                    f"the spool {path.parent} is in use by another collector ({_holder(path)}); "
                    "stop that loader first, or give this one a spool of its own (--spool)"
                ) from None
            time.sleep(0.05)
    fh.truncate(0)
    fh.write(orjson.dumps({"pid": os.getpid(), "loader_pid": os.getppid()}) + b"\n")
    fh.flush()
    return fh


def _holder(path: Path) -> str:
    try:
        pids = orjson.loads(path.read_bytes())
        return f"process {pids['pid']}, started by loader process {pids['loader_pid']}"
    except (OSError, ValueError, KeyError, TypeError):  # an older collector wrote no PIDs
        return "process unknown"

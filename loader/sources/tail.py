"""``tail:PATH``: follow a growing enriched TSV file, as ``tail -F`` would (through log
rotation), and resume after a restart from the last line committed to the warehouse.

A position is a byte offset *in one file*, named by its device and inode: the checkpoint
(``PATH.persona-checkpoint``, JSON ``{"offset", "device", "inode"}``) and the offset token a
sink keeps (``tail:OFFSET:DEVICE:INODE``) both carry them. The checkpoint is written
atomically after each warehouse commit, never before, so a crash re-reads at most the batch
in flight. A line is read only once its newline has been written.

Rotation (``mv PATH PATH.1``, then a new ``PATH``): the old file stays open and is read on
until the new one has its first bytes (a writer that has not reopened yet still appends to
the old one), then read to its end, and the new file is read from its start. A path that is
gone is waited for. A file that shrinks in place (truncated, same inode) is read again from
its start. On a restart, a checkpoint naming another inode means the file was rotated while
the loader was down: the new file is read from its start, and the lines the old file got
after the checkpoint, which cannot be found reliably, may be missing (a warning says so).
An older checkpoint or token (a bare offset) is read as an offset in whatever file is there.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

from loader import offsets
from loader.enriched import Event
from loader.errors import ConfigError, PersonaError
from loader.failed import ErrorType, FailedEvent
from loader.sources.tsv import parse_lines

log = logging.getLogger("persona.tail")

FileId = tuple[int, int]  # (st_dev, st_ino): which file an offset is in


def file_id(st: os.stat_result) -> FileId:
    return st.st_dev, st.st_ino


class TailSource:
    """Resumable, acknowledging (the checkpoint file) and streaming."""

    finite = False
    protects_privacy = False
    failure: PersonaError | None = None  # it waits for the file as long as it takes

    def __init__(self, path: str, idle_seconds: float = 0.2) -> None:
        self.path = Path(path)
        self.checkpoint = Path(f"{path}.persona-checkpoint")
        self.idle = idle_seconds
        self._stop = threading.Event()
        self._start, self._start_file = self._load_checkpoint()
        # what has been read: the offset after the last whole line yielded, in which file
        self._read_to, self._file = self._start, self._start_file

    @property
    def name(self) -> str:
        return f"tail:{self.path}"

    def _load_checkpoint(self) -> tuple[int, FileId | None]:
        if not self.checkpoint.exists():
            return 0, None
        try:
            saved = json.loads(self.checkpoint.read_text())
            if isinstance(saved, int):  # written before the file's identity was kept
                return saved, None
            return int(saved["offset"]), (int(saved["device"]), int(saved["inode"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{self.checkpoint}: not a tail checkpoint (a byte offset, device and inode); "
                "delete it to read the file from its start"
            ) from exc

    def stop(self) -> None:
        """Stop following: iteration ends once what the file holds now has been read."""
        self._stop.set()

    def position(self) -> str:
        return offsets.token("tail", self._read_to, *(self._file or ()))

    def seek(self, token: str) -> None:
        numbers = offsets.parse(token, "tail")
        if len(numbers) not in (1, 3):
            raise ConfigError(f"{token!r}: expected tail:OFFSET or tail:OFFSET:DEVICE:INODE")
        self._start = numbers[0]
        self._start_file = (numbers[1], numbers[2]) if numbers[1:] else None
        self._read_to, self._file = self._start, self._start_file

    def commit(self) -> None:
        saved: dict[str, int] | int = self._read_to  # nothing opened yet: keep the old form
        if self._file is not None:
            saved = {"offset": self._read_to, "device": self._file[0], "inode": self._file[1]}
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with tmp.open("w") as fh:
            fh.write(json.dumps(saved))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint)

    def _stat(self) -> os.stat_result | None:
        try:
            return self.path.stat()
        except FileNotFoundError:
            return None

    def _open(self) -> Generator[None, None, BinaryIO | None]:
        """The file at the path once there is one (``None`` if stopped first), yielding
        ``None`` while it waits so that the pipeline still commits on time."""
        waited = False
        while True:
            try:
                return self.path.open("rb")
            except FileNotFoundError:
                pass
            if self._stop.is_set():
                return None
            if not waited:
                log.warning("waiting for %s to appear: nothing is read until it exists (check "
                            "the path if it should be there already)", self.path)  # fmt: skip
                waited = True
            yield None
            time.sleep(self.idle)

    def __iter__(self) -> Iterator[Event | FailedEvent | None]:
        fh: BinaryIO | None = yield from self._open()
        if fh is None:
            return
        offset, current = self._start, file_id(os.fstat(fh.fileno()))
        if self._start_file is not None and current != self._start_file:
            log.warning("%s is not the file the checkpoint names (rotated while the loader was "
                        "stopped): reading it from the start; lines written to the old file "
                        "after byte %d may not have been loaded", self.path, offset)  # fmt: skip
            offset = 0
        self._read_to, self._file = offset, current
        fh.seek(offset)
        draining = gone = False
        try:
            while True:
                line = fh.readline()
                if line.endswith(b"\n"):
                    offset += len(line)
                    for item in parse_lines([line], self.name):
                        self._read_to = offset
                        yield item
                    self._read_to = offset
                    continue
                fh.seek(offset)  # nothing, or half a line: wait for the rest
                st = self._stat()
                if st is None:
                    if not gone:
                        log.info("%s is gone: reading on the file it named until a new one "
                                 "appears", self.path)  # fmt: skip
                        gone = True
                elif file_id(st) != current and st.st_size > 0:
                    if not draining:  # read what the old file got since the last readline
                        draining = True
                        continue
                    yield from self._leftover(fh, offset)
                    fh.close()
                    fh = yield from self._open()
                    if fh is None:
                        return
                    offset, current = 0, file_id(os.fstat(fh.fileno()))
                    self._read_to, self._file = offset, current
                    log.info("%s was rotated: reading the new file from its start", self.path)
                    draining = gone = False
                    continue
                elif file_id(st) == current and st.st_size < offset:
                    log.warning("%s shrank below %d bytes: reading it again from the start",
                                self.path, offset)  # fmt: skip
                    offset = 0
                    fh.seek(0)
                    continue
                if self._stop.is_set():
                    return
                yield None
                time.sleep(self.idle)
        finally:
            if fh is not None:
                fh.close()

    def _leftover(self, fh: BinaryIO, offset: int) -> Iterator[FailedEvent]:
        """Half a line at the end of a rotated file will never be finished: kept as a failed
        event rather than dropped."""
        rest = fh.read()
        if rest:
            self._read_to = offset + len(rest)
            text = rest.decode("utf-8", "backslashreplace")
            reason = "no newline at the end of a rotated file"
            yield FailedEvent(text, ErrorType.INCOMPLETE_LINE, reason, self.name)

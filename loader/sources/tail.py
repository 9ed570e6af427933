"""``tail:PATH``: follow a growing enriched TSV file, as ``tail -f`` would, and resume after a
restart from the last line committed to the warehouse.

The checkpoint (``PATH.persona-checkpoint``, the byte offset after the last committed line) is
written atomically after each warehouse commit, never before, so a crash re-reads at most the
batch in flight. A line is read only once its newline has been written. A file that shrinks
(truncated or replaced by log rotation) is read again from its start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from loader import offsets
from loader.enriched import Event
from loader.errors import ConfigError
from loader.failed import FailedEvent
from loader.sources.tsv import parse_lines

log = logging.getLogger("persona.tail")


class TailSource:
    def __init__(self, path: str, idle_seconds: float = 0.2) -> None:
        self.path = Path(path)
        self.checkpoint = Path(f"{path}.persona-checkpoint")
        self.idle = idle_seconds
        self._stop = threading.Event()
        self._read_to = self._start = self._load_checkpoint()

    @property
    def name(self) -> str:
        return f"tail:{self.path}"

    def _load_checkpoint(self) -> int:
        if not self.checkpoint.exists():
            return 0
        try:
            return int(self.checkpoint.read_text().strip())
        except ValueError as exc:
            raise ConfigError(
                f"{self.checkpoint}: not a byte offset; delete it to start over"
            ) from exc

    def stop(self) -> None:
        """Stop following: iteration ends once what the file holds now has been read."""
        self._stop.set()

    def position(self) -> str:
        return offsets.token("tail", self._read_to)

    def seek(self, token: str) -> None:
        (self._start,) = offsets.parse(token, "tail")
        self._read_to = self._start

    def commit(self) -> None:
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with tmp.open("w") as fh:
            fh.write(str(self._read_to))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint)

    def __iter__(self) -> Iterator[Event | FailedEvent | None]:
        offset = self._start
        while not self.path.exists():
            if self._stop.is_set():
                return
            yield None
            time.sleep(self.idle)
        fh = self.path.open("rb")
        try:
            fh.seek(offset)
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
                if self.path.stat().st_size < offset:
                    log.warning("%s shrank below %d bytes: reading it again from the start",
                                self.path, offset)  # fmt: skip
                    fh.close()
                    fh = self.path.open("rb")
                    offset = 0
                    continue
                if self._stop.is_set():
                    return
                yield None
                time.sleep(self.idle)
        finally:
            fh.close()

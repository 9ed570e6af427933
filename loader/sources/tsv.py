"""Enriched TSV from a file or stdin, one event per line, as Snowplow Enrich writes it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent


def parse_lines(lines: Iterable[bytes], source: str) -> Iterator[Event | FailedEvent]:
    """Decode and parse raw lines; undecodable bytes become a failed event, not a crash."""
    for raw in lines:
        raw = raw.rstrip(b"\r\n")
        if not raw:
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "backslashreplace")
            yield FailedEvent(text, "invalid_encoding", f"not UTF-8: {exc.reason}", source)
            continue
        yield parse_line(line, source)


@dataclass
class TsvFileSource:
    """``file:PATH``; ``file:-`` reads stdin. Finite: ends at end of file.

    Its position is the number of lines read, so a sink that remembers the last committed
    position (Snowflake) resumes a re-run after the lines it already has."""

    path: str
    _lines: int = 0
    _skip: int = 0

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def position(self) -> str:
        return f"{self._lines:020d}"

    def seek(self, token: str) -> None:
        self._skip = int(token)

    def __iter__(self) -> Iterator[Event | FailedEvent]:
        if self.path == "-":
            yield from parse_lines(self._count(sys.stdin.buffer), self.name)
            return
        with Path(self.path).open("rb") as fh:
            yield from parse_lines(self._count(fh), self.name)

    def _count(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        for line in lines:
            self._lines += 1
            if self._lines > self._skip:
                yield line

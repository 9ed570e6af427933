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
    """``file:PATH``; ``file:-`` reads stdin. Finite: ends at end of file."""

    path: str

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def __iter__(self) -> Iterator[Event | FailedEvent]:
        if self.path == "-":
            yield from parse_lines(sys.stdin.buffer, self.name)
            return
        with Path(self.path).open("rb") as fh:
            yield from parse_lines(fh, self.name)

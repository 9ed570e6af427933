"""Enriched TSV from a file or stdin, one event per line, as Snowplow Enrich writes it."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loader.columnar import Chunk, parse_block
from loader.enriched import Event, parse_line
from loader.failed import ErrorType, FailedEvent

BLOCK_BYTES = 4 * 1024 * 1024


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
            yield FailedEvent(text, ErrorType.INVALID_ENCODING, f"not UTF-8: {exc.reason}", source)
            continue
        yield parse_line(line, source)


def read_blocks(fh: BinaryIO, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Whole lines, about ``size`` bytes at a time (a pipe is read until that much has come
    or it ends: follow a growing file with ``tail:`` rather than ``file:-``)."""
    while True:
        block = fh.read(size)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += fh.readline()
        yield block


def parse_blocks(fh: BinaryIO, source: str, size: int = BLOCK_BYTES) -> Iterator[Chunk]:
    """Blocks parsed column by column, the next one on a second thread while the consumer
    commits the last (pyarrow and DuckDB release the GIL for most of their work)."""
    ready: queue.Queue[Chunk | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: Chunk | BaseException | None) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for block in read_blocks(fh, size):
                put(parse_block(block, source))
                if stop.is_set():
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    thread = threading.Thread(target=produce, name="tsv-parse", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)  # a daemon: a read of a stalled pipe must not hang the exit


@dataclass
class TsvFileSource:
    """``file:PATH``; ``file:-`` reads stdin. Finite: ends at end of file."""

    path: str
    finite = True  # a bulk load: the sink may trade memory for fewer checkpoints
    protects_privacy = False

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def __iter__(self) -> Iterator[Chunk]:
        if self.path == "-":
            yield from parse_blocks(sys.stdin.buffer, self.name)
            return
        with Path(self.path).open("rb") as fh:
            yield from parse_blocks(fh, self.name)

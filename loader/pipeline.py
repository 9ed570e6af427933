"""The loader's one loop: source → batch → sink, committing by rows or by time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from loader import offsets
from loader.batch import Batch
from loader.columnar import Chunk
from loader.contract import utcnow
from loader.errors import TransientSinkError
from loader.metrics import METRICS
from loader.settings import DEFAULT
from loader.sinks.base import Resuming, Sink
from loader.sources.base import Acknowledging, Chunked, Item, Resumable, Source

log = logging.getLogger("persona.pipeline")


@dataclass
class LoadSummary:
    good: int = 0
    failed: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.good + self.failed) / self.seconds if self.seconds else 0.0

    def line(self, sink: str) -> str:
        return (
            f"loaded {self.good:,} events ({self.failed:,} failed) in {self.batches:,} batches, "
            f"{self.seconds:.1f} s, {self.rate:,.0f} events/s -> {sink}"
        )


class Counted:
    """Gives a replayable source (a file, an export, the synthetic stream) a position: the
    number of items yielded. A sink that remembers the last committed position (Snowflake's
    offset tokens) then resumes a re-run right after the items it already has.

    A chunk (many items parsed together) is yielded in pieces of at most ``room`` items, which
    the pipeline sets to what the open batch can still take: a batch then ends exactly at its
    row limit, and the position after it is exact."""

    finite = False
    protects_privacy = False

    def __init__(self, source: Iterable[Item]) -> None:
        self.source, self.count, self.skip = source, 0, 0
        self.room = 0  # 0: no limit

    @property
    def name(self) -> str:
        return self.source.name if isinstance(self.source, Source) else "items"

    def position(self) -> str:
        return offsets.token("items", self.count)

    def seek(self, token: str) -> None:
        (self.skip,) = offsets.parse(token, "items")

    def __iter__(self) -> Iterator[Item]:
        for item in self.source:
            if item is None:
                yield item
                continue
            if isinstance(item, Chunk):
                if self.count < self.skip:  # cut it where the skip ends
                    skipped, item = item.split(self.skip - self.count)
                    self.count += len(skipped)
                rest: Chunk | None = item
                while rest is not None and len(rest):
                    if 0 < self.room < len(rest):
                        piece, rest = rest.split(self.room)
                    else:
                        piece, rest = rest, None
                    self.count += len(piece)
                    yield piece
                continue
            self.count += 1
            if self.count > self.skip:
                yield item


def run(
    source: Iterable[Item],
    sink: Sink,
    *,
    batch_rows: int = DEFAULT.batch_rows,
    batch_seconds: float = DEFAULT.batch_seconds,
    batch_bytes: int = DEFAULT.batch_bytes,
    on_commit: Callable[[LoadSummary], None] | None = None,
    retries: int = 8,
    validate: Callable[[Item], Item] | None = None,
    between: Callable[[], None] | None = None,
) -> LoadSummary:
    """Load everything the source yields; a batch is committed before the next one starts,
    once it holds ``batch_rows`` items or weighs ``batch_bytes`` (``Batch.nbytes``), or has
    waited ``batch_seconds``.

    A streaming source yields ``None`` while it waits for input, so that a batch is committed
    after ``batch_seconds`` even when nothing else arrives. An ``Acknowledging`` source
    (the collector's spool, Kafka) is told after each warehouse commit, never before:
    that is what makes delivery at-least-once. A transient sink error (a lock, a timeout) is
    retried with backoff, up to ``retries`` times, while a collector keeps spooling.
    ``validate`` (``loader.validate.Validate``) sees each item before the batch does.
    ``between`` is called whenever no batch is open (after a commit, and while a streaming
    source waits): nothing validated is then waiting to be written, so a forget request run
    there (the live process's) cannot be undone by a batch already formed.
    """
    items = source if isinstance(source, Resumable) else Counted(source)
    # A sink that remembers the last committed position (Snowflake's offset tokens) is the
    # authority on where to resume: the source skips what the warehouse already has.
    if isinstance(sink, Resuming) and (token := sink.committed_offset_token()) is not None:
        items.seek(token)
    summary = LoadSummary()
    started = time.perf_counter()
    batch = Batch()
    opened = started

    def commit() -> None:
        nonlocal batch, opened
        write_started = time.perf_counter()
        batch.offset_token = items.position()
        batch.seal()  # events Arrow refuses become failed events before the sink sees any
        for attempt in range(retries + 1):
            try:
                sink.write(batch)
                break
            except TransientSinkError as exc:
                if attempt == retries:
                    raise
                delay = min(30.0, 0.5 * 2**attempt)
                log.warning("batch not committed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
        newest = batch.newest_collector_tstamp()
        METRICS.add(events_good=batch.good, events_failed=len(batch.failed), batches=1)
        METRICS.set(
            last_batch_rows=len(batch),
            last_batch_seconds=time.perf_counter() - write_started,
            last_end_to_end_seconds=(utcnow() - newest).total_seconds() if newest else 0.0,
        )
        if isinstance(items, Acknowledging):  # after the metrics: "nothing pending" implies
            items.commit()  # that they count it
        summary.good += batch.good
        summary.failed += len(batch.failed)
        summary.batches += 1
        summary.seconds = time.perf_counter() - started
        batch, opened = Batch(), time.perf_counter()
        if on_commit is not None:
            on_commit(summary)
        if between is not None:
            between()

    # a source that yields chunks sizes them to what the open batch can still take
    sized = items if isinstance(items, Chunked) else None
    if sized is not None:
        sized.room = batch_rows
    for item in items:
        if item is None and between is not None and not batch:
            between()
        if item is not None:
            if not batch:
                opened = time.perf_counter()
            if validate is not None:
                item = validate(item)
            if item is not None:
                batch.add(item)
        if batch and (
            len(batch) >= batch_rows
            or batch.nbytes >= batch_bytes
            or time.perf_counter() - opened >= batch_seconds
        ):
            commit()
        if sized is not None:
            sized.room = batch_rows - len(batch)
    if batch:
        commit()
    summary.seconds = time.perf_counter() - started
    return summary

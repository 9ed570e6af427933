"""``CollectorSource``: the collector as the pipeline sees it. It runs the HTTP process,
restarts it when it dies, and yields what the spool holds, enriched."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from loader import offsets
from loader.columnar import Chunk
from loader.enrich import EnrichConfig
from loader.errors import PersonaError, SourceError
from loader.metrics import METRICS
from loader.sources.collector.config import CollectorConfig
from loader.sources.collector.process import LEFTOVER_SECONDS, answer_metrics, serve
from loader.sources.collector.records import BLOCK_RECORDS, to_chunk
from loader.spool import Position, Record, Spool, lock_writer

log = logging.getLogger("persona.collector")

# A dead HTTP process is started again after 0.5 s, 1 s, 2 s, ... (at most 30 s); one that has
# run this long counts as healthy, and the count of restarts in a row starts over.
HEALTHY_SECONDS = 60.0


class CollectorSource:
    """Serves the collector in a process of its own and yields the spooled events, enriched,
    in order.

    The HTTP process only parses requests and appends them to the spool (fsync, then 200);
    this process reads the spool, enriches and commits. Apart, neither waits for the other's
    Python work (one process would share one interpreter lock between HTTP and enrichment).
    This process also watches the HTTP one: if it dies, it is started again (``restarts``
    times in a row, with backoff); if it keeps dying, iteration ends once what was spooled has
    been yielded, and ``failure`` says why.
    Never ends by itself otherwise: ``stop()`` (the CLI calls it on SIGTERM/SIGINT) stops
    accepting requests, and iteration ends once everything spooled has been yielded.
    """

    finite = False
    protects_privacy = True  # records are protected before the spool (the pipeline must not)

    def __init__(self, config: CollectorConfig, enrich: EnrichConfig | None = None) -> None:
        self.config = config
        self.host, self.port, self.restarts = config.host, config.port, config.restarts
        self.spool_dir = Path(config.spool_dir)
        self.spool = Spool(self.spool_dir, writer=False)
        self.enrich = enrich or EnrichConfig()
        self.failure: PersonaError | None = None  # why the collector stopped by itself
        self._stop = threading.Event()
        self._read_to: Position = self.spool.committed
        self._start: Position = self.spool.committed
        self._process: Any = None
        self._http_stop: Any = None  # the pipe end that tells the HTTP process to stop
        self._stopping = threading.Event()  # stop() was called; the supervisor acts on it
        self._supervisor: threading.Thread | None = None
        self._spawned_at = 0.0
        self.room = 0  # what the pipeline's open batch can still take (0: no limit)

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # another collector on this spool: say so now, naming it, rather than after a timeout
        lock_writer(self.spool_dir, LEFTOVER_SECONDS).close()
        self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name="collector-supervisor", daemon=True
        )
        self._supervisor.start()
        log.info("collector listening on %s", self.name)

    def _spawn(self) -> None:
        """Start the HTTP process and wait until it listens."""
        import multiprocessing

        from loader import logs

        self._spawned_at = time.monotonic()  # even if it fails to start: a quick death
        ctx = multiprocessing.get_context("spawn")  # not fork: DuckDB's threads are running
        if self._http_stop is not None:  # the last process's
            self._http_stop.close()
        ready, ready_theirs = ctx.Pipe(duplex=False)
        stop_theirs, self._http_stop = ctx.Pipe(duplex=False)
        ours, theirs = ctx.Pipe()
        process = ctx.Process(
            target=serve, name="persona-collector", daemon=True,
            args=(replace(self.config, log_format=logs.current_format()),
                  ready_theirs, stop_theirs, theirs),
        )  # fmt: skip
        process.start()
        for end in (ready_theirs, stop_theirs, theirs):  # the child's: EOF here once it exits
            end.close()
        self._process = process
        threading.Thread(target=answer_metrics, args=(ours,), name="metrics", daemon=True).start()
        deadline = time.monotonic() + 60
        try:
            while not ready.poll(0.05):  # a byte once it listens; EOF if it exits first
                if self._stopping.is_set():
                    return
                if time.monotonic() > deadline:
                    process.kill()
                    process.join()
                    raise SourceError(f"the collector did not listen on {self.name} in 60 s")
            ready.recv_bytes()
        except EOFError:
            process.join()
            raise SourceError(
                f"the collector's HTTP process exited (code {process.exitcode}) before it "
                f"listened on {self.host}:{self.port}; its log line above says why"
            ) from None
        finally:
            ready.close()

    def _supervise(self) -> None:
        """The HTTP process's keeper, on a thread of its own: it starts the process again when
        it dies (nothing answers while it is gone), up to ``restarts`` deaths in a row, each
        sooner than ``HEALTHY_SECONDS`` after its start; it stops it after ``stop()``. Either
        way, once no HTTP process writes to the spool, iteration may end."""
        try:
            self._keep_serving()
        except Exception as exc:  # a bug here must not leave a loader up that serves nothing
            log.exception("the collector's supervisor failed")
            self.failure = SourceError(f"the collector's supervisor failed: {exc!r}")
        finally:
            self._stop.set()  # nothing writes to the spool now: iteration yields the rest

    def _keep_serving(self) -> None:
        from multiprocessing.connection import wait

        in_a_row = 0
        kill_at = 0.0
        while True:
            process = self._process
            if not wait([process.sentinel], timeout=0.2):
                if self._stopping.is_set():
                    self._http_stop.close()  # EOF: the HTTP process stops
                    kill_at = kill_at or time.monotonic() + 15
                    if time.monotonic() > kill_at:
                        log.warning("the collector's HTTP process did not stop: killing it")
                        process.kill()
                continue
            process.join()
            if self._stopping.is_set():
                return
            healthy = time.monotonic() - self._spawned_at >= HEALTHY_SECONDS
            in_a_row = 1 if healthy else in_a_row + 1
            if in_a_row > self.restarts:
                deaths = "once" if in_a_row == 1 else f"{in_a_row} times in a row"
                self.failure = SourceError(
                    f"the collector's HTTP process on {self.name} died {deaths} (last exit "
                    f"code {process.exitcode}); what it had acknowledged is loaded, and the "
                    f"loader stops (--collector-restarts {self.restarts})"
                )
                log.error("%s", self.failure)
                return
            delay = min(30.0, 0.5 * 2 ** (in_a_row - 1))
            log.error("the collector's HTTP process died (exit code %s); starting it again in "
                      "%.1f s (restart %d of at most %d in a row)",
                      process.exitcode, delay, in_a_row, self.restarts)  # fmt: skip
            if self._stopping.wait(delay):
                return
            try:
                self._spawn()
                METRICS.add(collector_restarts=1)
                log.info("collector listening on %s again", self.name)
            except Exception:  # one more death: the loop finds the process gone
                log.exception("starting the collector's HTTP process again failed")

    def stop(self) -> None:
        """Stop accepting requests; iteration drains the spool and ends. Returns at once, so
        that a signal handler may call it: the supervisor stops the HTTP process."""
        self._stopping.set()
        if self._supervisor is None:
            self._stop.set()

    def __iter__(self) -> Iterator[Chunk | None]:
        """Chunks of what the spool holds now (at most ``BLOCK_RECORDS``, and no more than the
        open batch can take, so a batch ends at its row limit): no record waits for a block to
        fill."""
        if self._process is None and not self._stopping.is_set():
            self.start()
        records: list[Record] = []
        read_to = self._read_to
        for item in self.spool.read(self._start, self._stop):
            if item is not None:
                read_to, record = item
                records.append(record)
                if len(records) < (min(BLOCK_RECORDS, self.room) if self.room else BLOCK_RECORDS):
                    continue
            if records:
                chunk = to_chunk(records, self.enrich, self.name)
                self._read_to, records = read_to, []
                yield chunk
            if item is None:
                yield None  # idle: lets the pipeline commit a batch that has waited long enough
        if records:
            chunk = to_chunk(records, self.enrich, self.name)
            self._read_to = read_to
            yield chunk

    def commit(self) -> None:
        """Everything yielded so far is in the warehouse."""
        self.spool.commit(self._read_to)

    def position(self) -> str:
        """The spool position after the last yielded event, as an offset token."""
        return offsets.token("spool", self._read_to.segment, self._read_to.offset)

    def seek(self, token: str) -> None:
        """Resume after ``token`` (the warehouse's committed offset token), not the checkpoint."""
        segment, offset = offsets.parse(token, "spool")
        self._start = self._read_to = Position(segment, offset)

    def close(self) -> None:
        self.stop()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
        if self._process is not None and self._process.is_alive():  # it never started
            self._process.kill()
            self._process.join()
        self.spool.close()

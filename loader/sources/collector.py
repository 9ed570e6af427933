"""``http://HOST:PORT``: a Snowplow collector, so the real trackers work unchanged.

It speaks the tracker protocol: ``GET /i`` (one event in the query string, answered with a 1x1
GIF), ``POST /com.snowplowanalytics.snowplow/tp2`` (a ``payload_data`` batch), ``OPTIONS`` for
CORS, and the ``sp`` cookie that carries ``network_userid``. A request is acknowledged only
once its events are fsynced to the local spool; the loader then reads the spool, enriches, and
commits to the warehouse, and only then moves the spool checkpoint. Input that is not an event
(bad JSON, an unknown payload) is spooled too and becomes a failed event with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from loader import offsets
from loader.columnar import Chunk, parse_rows
from loader.contract import utcnow
from loader.enrich import EnrichConfig, Received, enrich_or_fail, enrich_row, refused, typed_or_fail
from loader.enriched import Event, FieldError
from loader.errors import PersonaError, SourceError
from loader.failed import ErrorType, FailedEvent
from loader.metrics import METRICS
from loader.privacy import Privacy
from loader.settings import DEFAULT, Settings
from loader.spool import Position, Record, Spool, SpoolFull, lock_writer

log = logging.getLogger("persona.collector")

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
COOKIE_SECONDS = 365 * 24 * 3600
ANONYMOUS_NUID = "00000000-0000-0000-0000-000000000000"
# An sp cookie is an id this collector (or Snowplow's) issued; anything else is replaced.
NUID_RE = re.compile(r"[A-Za-z0-9-]{1,128}")
# Snowplow's collector refuses longer URIs too; the browser tracker's GETs stay far below.
MAX_QUERY_BYTES = 32 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
# Spooled records enriched and typed together; a block never waits to fill.
BLOCK_RECORDS = 1000
# How long a new collector waits for the spool's writer lock: a collector left over from a
# killed loader lets go within moments (it watches its parent, and gives requests in flight
# SHUTDOWN_SECONDS to finish).
LEFTOVER_SECONDS = 5.0
SHUTDOWN_SECONDS = 3
# File descriptors kept free of connections: the spool's segment, checkpoint reads, the lock,
# pipes, the event loop's own. The accept backlog needs as many again as the connections: a
# burst is accepted before the connections over the limit are closed.
FD_RESERVE = 64
# A dead HTTP process is started again after 0.5 s, 1 s, 2 s, ... (at most 30 s); one that has
# run this long counts as healthy, and the count of restarts in a row starts over.
HEALTHY_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the collector: time to send a request's head and body,
    idle time between requests, and (all clients together) open connections."""

    header_timeout: float = DEFAULT.header_timeout
    body_timeout: float = DEFAULT.body_timeout
    keep_alive_timeout: float = DEFAULT.keep_alive_timeout
    max_connections: int = DEFAULT.max_connections


@dataclass(frozen=True)
class CollectorConfig:
    """The collector's settings, handed whole to its HTTP process (started with spawn, so
    this is pickled): where it listens and spools, and what a client may send."""

    host: str
    port: int
    spool_dir: str
    max_body_bytes: int = DEFAULT.max_request_bytes
    trust_forwarded_for: bool = DEFAULT.trust_forwarded_for
    spool_max_bytes: int = DEFAULT.spool_max_bytes
    limits: Limits = Limits()
    restarts: int = DEFAULT.collector_restarts
    privacy: Privacy | None = None  # applied to each record before the spool
    log_format: str = DEFAULT.log_format

    @classmethod
    def from_settings(
        cls, host: str, port: int, s: Settings, privacy: Privacy | None = None
    ) -> CollectorConfig:
        limits = Limits(s.header_timeout, s.body_timeout, s.keep_alive_timeout, s.max_connections)
        return cls(
            host, port, s.spool, max_body_bytes=s.max_request_bytes,
            trust_forwarded_for=s.trust_forwarded_for, spool_max_bytes=s.spool_max_bytes,
            limits=limits, restarts=s.collector_restarts, privacy=privacy,
            log_format=s.log_format,
        )  # fmt: skip


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_app(
    spool: Spool,
    max_body_bytes: int = DEFAULT.max_request_bytes,
    cookie_name: str = "sp",
    trust_forwarded_for: bool = False,
    pipeline_metrics: Callable[[], dict[str, float]] | None = None,
    privacy: Privacy | None = None,
) -> Any:
    """The Starlette app; separate from the server so tests can drive it directly.

    ``pipeline_metrics`` fetches the loader's counters when the loader runs in another process.
    ``privacy`` protects each record before it reaches the spool.
    """
    protect = privacy.protect_record if privacy is not None and privacy.active else None
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    def cors(request: Request, response: Response) -> Response:
        origin = request.headers.get("origin")
        response.headers["Access-Control-Allow-Origin"] = origin or "*"
        if origin:
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    def identify(request: Request) -> str:
        if request.headers.get("sp-anonymous"):
            return ANONYMOUS_NUID
        cookie = request.cookies.get(cookie_name, "")
        return cookie if NUID_RE.fullmatch(cookie) else str(uuid.uuid4())

    def with_cookie(request: Request, response: Response, nuid: str) -> Response:
        if nuid != ANONYMOUS_NUID:
            secure = request.url.scheme == "https"
            response.set_cookie(cookie_name, nuid, max_age=COOKIE_SECONDS, path="/",
                                samesite="none" if secure else "lax", secure=secure)  # fmt: skip
        return cors(request, response)

    async def store(records: list[Record]) -> Response | None:
        if protect is not None:
            records = [protect(r) for r in records]
        try:
            await asyncio.wrap_future(spool.append(records))
        except SpoolFull as exc:
            METRICS.add(requests_refused=1)
            log.warning("backpressure: answering 503: %s", exc)
            return PlainTextResponse("spool full, retry later", status_code=503)
        METRICS.add(requests=1)
        return None

    def context(request: Request, nuid: str) -> Record:
        ip = request.client.host if request.client else ""
        if trust_forwarded_for:  # only behind a proxy that sets it; clients can forge it
            ip = request.headers.get("x-forwarded-for", "").split(",")[0].strip() or ip
        if nuid == ANONYMOUS_NUID:  # SP-Anonymous: the tracker asked not to be identified
            ip = ""
        return {"t": _now_ms(), "ip": ip, "ua": request.headers.get("user-agent", ""), "nuid": nuid}

    async def pixel(request: Request) -> Response:
        nuid = identify(request)
        payload = dict(request.query_params)
        # a bare GET /i (a health probe, a prefetch) carries no event
        refused = await store([context(request, nuid) | {"p": payload}]) if payload else None
        if refused is not None:
            return refused
        return with_cookie(request, Response(PIXEL, media_type="image/gif"), nuid)

    async def post(request: Request) -> Response:
        nuid = identify(request)
        declared = request.headers.get("content-length", "")

        def too_large(size: str) -> Response:
            METRICS.add(requests_refused=1)
            log.warning("refused a request of %s bytes (limit %d): 413", size, max_body_bytes)
            return cors(request, PlainTextResponse("request too large", status_code=413))

        if declared.isdigit() and int(declared) > max_body_bytes:
            return too_large(declared)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():  # never more than the limit in memory
                size += len(chunk)
                if size > max_body_bytes:
                    return too_large(f"over {max_body_bytes}")
                chunks.append(chunk)
        except ClientDisconnect:  # hung up, or timed out (the 408 is sent): nothing to spool
            return Response(status_code=408)  # goes nowhere: the connection is gone
        body = b"".join(chunks)
        base = context(request, nuid)
        try:
            envelope = orjson.loads(body)
            payloads = envelope["data"]
            if not isinstance(payloads, list) or not all(isinstance(p, dict) for p in payloads):
                raise TypeError("data must be a list of objects")
            records = [base | {"p": {str(k): str(v) for k, v in p.items()}} for p in payloads]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            text = body.decode("utf-8", "backslashreplace")
            records = [base | {"bad": text, "error": f"not a payload_data batch: {exc}"}]
        if (refused := await store(records)) is not None:
            return cors(request, refused)
        return with_cookie(request, PlainTextResponse("ok"), nuid)

    async def options(request: Request) -> Response:
        response = Response(status_code=200)
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, SP-Anonymous"
        response.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        return cors(request, response)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics(request: Request) -> Response:
        if pipeline_metrics is not None:
            spool.committed = spool.read_checkpoint()
            METRICS.set(**await asyncio.get_running_loop().run_in_executor(None, pipeline_metrics))
        METRICS.set(spool_pending_bytes=spool.pending_bytes())
        return PlainTextResponse(METRICS.render(), media_type="text/plain; version=0.0.4")

    app = Starlette(routes=[
        Route("/i", pixel, methods=["GET"]),
        Route(TP2, post, methods=["POST"]),
        Route(TP2, options, methods=["OPTIONS"]),
        Route("/i", options, methods=["OPTIONS"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ])  # fmt: skip
    return limit_request_head(app)


def limit_request_head(app: Any) -> Any:
    """Refuse an oversized query string (414) or header block (431: too many headers or too
    many bytes) before any route sees it, so a hostile request costs a status line, not a
    spool record."""

    async def limited(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            status = 0
            if len(scope["query_string"]) > MAX_QUERY_BYTES:
                status = 414
            elif len(scope["headers"]) > MAX_HEADERS or (
                sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES
            ):
                status = 431
            if status:
                METRICS.add(requests_refused=1)
                log.warning("refused a request: %d (query or headers over the limit)", status)
                headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": b"request too large"})
                return
        await app(scope, receive, send)

    return limited


def to_event(record: Record, cfg: EnrichConfig, source: str) -> Event | FailedEvent:
    """Never raises: a spooled record that cannot be enriched must not wedge the loader, which
    would meet it again after every restart."""
    try:
        if "bad" in record:
            return _bad(record, source)
        return enrich_or_fail(_received(record), cfg, source)
    except Exception as exc:  # a bug in enrichment: keep the input and the reason
        return _enrich_error(record, exc, source)


def to_chunk(records: list[Record], cfg: EnrichConfig, source: str) -> Chunk:
    """A block of spooled records as ``to_event`` would make them, one by one, but typed column
    by column (``columnar.parse_rows``): per event, only the enrichment itself runs in Python.
    A property test holds the two equal (tests/loader/test_collector_block.py)."""
    etl = utcnow()
    rows: list[list[str]] = []
    row_items: list[int] = []
    received: list[Received] = []
    done: dict[int, Event | FailedEvent] = {}
    for i, record in enumerate(records):
        try:
            if "bad" in record:
                done[i] = _bad(record, source)
                continue
            got = _received(record)
            try:
                rows.append(enrich_row(got, cfg, etl))
            except FieldError as exc:
                done[i] = refused(got, cfg, exc, source)
                continue
            row_items.append(i)
            received.append(got)
        except Exception as exc:  # a bug in enrichment, as in to_event
            done[i] = _enrich_error(record, exc, source)

    def per_row(row: int) -> Event | FailedEvent:
        try:
            return typed_or_fail(rows[row], received[row], cfg, source)
        except Exception as exc:
            return _enrich_error(records[row_items[row]], exc, source)

    try:
        return parse_rows(rows, row_items, done, per_row)
    except Exception:  # a bug in the block path must not wedge the spool: go record by record
        log.exception("typing a block failed; enriching its %d records one by one", len(records))
        events = [to_event(record, cfg, source) for record in records]
        return parse_rows([], [], dict(enumerate(events)), per_row)


def _received(record: Record) -> Received:
    collector_tstamp = datetime(1970, 1, 1) + timedelta(milliseconds=record["t"])
    return Received(record["p"], collector_tstamp, record.get("ip", ""),
                    record.get("ua", ""), record.get("nuid", ""))  # fmt: skip


def _bad(record: Record, source: str) -> FailedEvent:
    return FailedEvent(record["bad"], ErrorType.INVALID_PAYLOAD, record["error"], source)


def _enrich_error(record: Record, exc: Exception, source: str) -> FailedEvent:
    log.exception("enrichment failed")
    raw = orjson.dumps(record, default=str).decode()
    return FailedEvent(raw, ErrorType.ENRICH_ERROR, f"{type(exc).__name__}: {exc}", source)


def _protocol(limits: Limits) -> type:
    """uvicorn's httptools protocol with what it lacks: a deadline for a request's head (from
    the connection's first byte, or the next request's) and for its body, and a cap on open
    connections, checked as each is accepted, so that slow or idle clients cannot hold every
    file descriptor (at the limit the process died opening the spool's checkpoint).

    uvicorn's own ``limit_concurrency`` counts a connection only once its head is in, and its
    keep-alive timer stops at the next request's first byte: neither stops a slowloris."""
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    class Protocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _awaiting = "header"  # what the deadline waits for: a request's head, or its body
        _partial = False  # a byte of the awaited request has arrived

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            METRICS.add(open_connections=1)
            if len(self.connections) > limits.max_connections:
                self._close("over_limit", 503, b"too many connections, retry later")
            else:
                self._expect("header", limits.header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            METRICS.add(open_connections=-1)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
                self._expect("header", limits.header_timeout)  # the next request on the connection
            self._partial = True
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._cancel()
            super().on_headers_complete()
            self._expect("body", limits.body_timeout)  # cancelled at once if there is none

        def on_message_complete(self) -> None:
            self._cancel()
            super().on_message_complete()

        def _expect(self, awaiting: str, seconds: float) -> None:
            self._cancel()
            self._awaiting, self._partial = awaiting, False
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self._awaiting == "body" and self.cycle is not None:
                if self.cycle.response_started:  # answered already (413): no need to wait
                    self.transport.close()
                    return
                # the app's receive() now returns http.disconnect and its send() does nothing
                self.cycle.disconnected = True
            # a connection that never sent a byte is closed without a word (a browser's
            # preconnect); a request cut short is told why, unless an earlier request's
            # response is still to come on the connection (pipelining)
            told = (self._awaiting == "body" or self._partial) and not self.pipeline
            self._close(f"{self._awaiting}_timeout", 408 if told else 0, b"request timeout")

        def _close(self, reason: str, status: int, body: bytes) -> None:
            METRICS.add(**{f"closed_{reason}": 1})
            _log_throttled(reason)
            if status:
                head = [STATUS_LINE[status]]
                for name, value in self.server_state.default_headers:
                    head += [name, b": ", value, b"\r\n"]
                if status == 503:
                    head.append(b"retry-after: 1\r\n")
                head += [b"content-type: text/plain; charset=utf-8\r\n",
                         b"content-length: %d\r\n" % len(body), b"connection: close\r\n",
                         b"\r\n", body]  # fmt: skip
                self.transport.write(b"".join(head))
            self.transport.close()

    return Protocol


_LOGGED: dict[str, float] = {}
CLOSED = {
    "header_timeout": "no request head within --header-timeout (408 if part of one came)",
    "body_timeout": "no request body within --body-timeout (408)",
    "over_limit": "over --max-connections (503)",
}


def _log_throttled(reason: str) -> None:
    """One line a minute per reason: a slowloris must not flood the log too."""
    now = time.monotonic()
    if now - _LOGGED.get(reason, -60.0) >= 60.0:
        _LOGGED[reason] = now
        log.warning('closed a connection: %s; persona_collector_closed_connections_total'
                    '{reason="%s"} counts them, this line comes at most once a minute',
                    CLOSED[reason], reason)  # fmt: skip


def _fit_connections(wanted: int) -> int:
    """The connections this process can hold without running out of file descriptors: the
    soft limit is raised towards the hard one if need be; failing that, fewer connections."""
    import resource

    def budget(soft: int) -> int:  # connections, and a backlog as long, beside the reserve
        if soft == resource.RLIM_INFINITY:
            return wanted
        return (soft - len(os.listdir("/proc/self/fd")) - FD_RESERVE) // 2

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if budget(soft) < wanted and soft != hard:
        needed = soft + 2 * (wanted - budget(soft))
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    fit = min(wanted, max(1, budget(soft)))
    if fit < wanted:
        log.warning("the open-file limit (ulimit -n %d) holds %d connections, not "
                    "--max-connections %d: accepting %d", soft, fit, wanted, fit)  # fmt: skip
    return fit


def _listen(
    config: CollectorConfig,
    spool: Spool,
    pipeline_metrics: Callable[[], dict[str, float]] | None = None,
) -> tuple[Any, threading.Thread]:
    """uvicorn on a thread (never the main one: uvicorn would take over the signals)."""
    import uvicorn

    host, port, limits = config.host, config.port, config.limits
    app = build_app(spool, config.max_body_bytes, trust_forwarded_for=config.trust_forwarded_for,
                    pipeline_metrics=pipeline_metrics, privacy=config.privacy)  # fmt: skip
    # uvicorn would take X-Forwarded-For (and -Proto) from any client on 127.0.0.1: only a
    # proxy the user has vouched for may set them
    server_config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off",
                            proxy_headers=config.trust_forwarded_for,
                            forwarded_allow_ips="*", http=_protocol(limits), ws="none",
                            timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]
                            backlog=min(2048, limits.max_connections),
                            timeout_graceful_shutdown=SHUTDOWN_SECONDS)  # fmt: skip
    server = uvicorn.Server(server_config)
    thread = threading.Thread(target=server.run, name="collector", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the collector could not listen on {host}:{port}")
        time.sleep(0.01)
    return server, thread


def _serve(config: CollectorConfig, ready: Any, stop: Any, metrics_conn: Any) -> None:
    """The collector's HTTP process: requests in, spool records fsynced, 200 out. The loader
    process reads the spool; it shares only files (the spool, its checkpoint) and the pipe
    that answers ``/metrics`` with the loader's counters. Exits with 1 if it cannot start.

    ``ready`` and ``stop`` are pipe ends, not ``multiprocessing.Event``s: an Event's ``set()``
    waits for every process waiting on it, and one killed mid-wait never answers. Here, a byte
    on ``ready`` says this process listens; the end of ``stop`` (the loader closed it, or is
    gone) says to stop."""
    import signal
    import sys

    from loader import logs

    logs.configure(config.log_format)
    for signum in (signal.SIGINT, signal.SIGTERM):  # the loader process decides when to stop
        signal.signal(signum, signal.SIG_IGN)
    parent = os.getppid()
    # One writer per spool: a collector left over from a killed loader exits (it watches its
    # parent) before this one opens the spool and takes the port.
    try:
        lock = lock_writer(config.spool_dir, LEFTOVER_SECONDS)  # held while this process writes
    except SourceError as exc:
        log.error("%s", exc)
        sys.exit(1)
    spool = Spool(config.spool_dir, max_pending_bytes=config.spool_max_bytes)
    asking = threading.Lock()

    def pipeline_metrics() -> dict[str, float]:
        with asking:
            metrics_conn.send(None)
            return metrics_conn.recv() if metrics_conn.poll(5) else {}

    limits = replace(config.limits, max_connections=_fit_connections(config.limits.max_connections))
    try:
        server, thread = _listen(replace(config, limits=limits), spool, pipeline_metrics)
    except OSError as exc:
        log.error("%s", exc)
        spool.close()
        sys.exit(1)
    with contextlib.suppress(OSError):  # the loader is gone: the loop below ends at once
        ready.send_bytes(b"ready")
    while not stop.poll(0.05) and os.getppid() == parent and thread.is_alive():
        # what the loader has done, for backpressure; out of descriptors for a moment (a
        # burst of connections being accepted and closed), it is read next time
        with contextlib.suppress(OSError):
            spool.committed = spool.read_checkpoint()
    server.should_exit = True
    thread.join(timeout=10)
    spool.close()
    lock.close()


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
            target=_serve, name="persona-collector", daemon=True,
            args=(replace(self.config, log_format=logs.current_format()),
                  ready_theirs, stop_theirs, theirs),
        )  # fmt: skip
        process.start()
        for end in (ready_theirs, stop_theirs, theirs):  # the child's: EOF here once it exits
            end.close()
        self._process = process
        threading.Thread(target=_answer_metrics, args=(ours,), name="metrics", daemon=True).start()
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


def _answer_metrics(conn: Any) -> None:
    """Answers the HTTP process's ``/metrics`` with this process's pipeline counters."""
    with conn:
        while True:
            try:
                conn.recv()
                conn.send(METRICS.pipeline_values())
            except (EOFError, OSError):
                return

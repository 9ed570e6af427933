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
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from loader import offsets
from loader.columnar import Chunk, parse_rows
from loader.contract import utcnow
from loader.enrich import EnrichConfig, Received, enrich_or_fail, enrich_row, refused, typed_or_fail
from loader.enriched import Event, FieldError
from loader.failed import FailedEvent
from loader.metrics import METRICS
from loader.privacy import Privacy
from loader.spool import Position, Spool, SpoolFull

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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_app(
    spool: Spool,
    max_body_bytes: int = 1_000_000,
    cookie_name: str = "sp",
    trust_forwarded_for: bool = False,
    pipeline_metrics: Callable[[], dict[str, float]] | None = None,
    privacy: Privacy | None = None,
):
    """The Starlette app; separate from the server so tests can drive it directly.

    ``pipeline_metrics`` fetches the loader's counters when the loader runs in another process.
    ``privacy`` protects each record before it reaches the spool.
    """
    protect = privacy.protect_record if privacy is not None and privacy.active else None
    from starlette.applications import Starlette
    from starlette.requests import Request
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

    async def store(records: list[dict]) -> Response | None:
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

    def context(request: Request, nuid: str) -> dict:
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
        async for chunk in request.stream():  # never more than the limit in memory
            size += len(chunk)
            if size > max_body_bytes:
                return too_large(f"over {max_body_bytes}")
            chunks.append(chunk)
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

    async def limited(scope: dict, receive: Any, send: Any) -> None:
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


def to_event(record: dict, cfg: EnrichConfig, source: str) -> Event | FailedEvent:
    """Never raises: a spooled record that cannot be enriched must not wedge the loader, which
    would meet it again after every restart."""
    try:
        if "bad" in record:
            return _bad(record, source)
        return enrich_or_fail(_received(record), cfg, source)
    except Exception as exc:  # a bug in enrichment: keep the input and the reason
        return _enrich_error(record, exc, source)


def to_chunk(records: list[dict], cfg: EnrichConfig, source: str) -> Chunk:
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


def _received(record: dict) -> Received:
    collector_tstamp = datetime(1970, 1, 1) + timedelta(milliseconds=record["t"])
    return Received(record["p"], collector_tstamp, record.get("ip", ""),
                    record.get("ua", ""), record.get("nuid", ""))  # fmt: skip


def _bad(record: dict, source: str) -> FailedEvent:
    return FailedEvent(record["bad"], "invalid_payload", record["error"], source)


def _enrich_error(record: dict, exc: Exception, source: str) -> FailedEvent:
    log.exception("enrichment failed")
    raw = orjson.dumps(record, default=str).decode()
    return FailedEvent(raw, "enrich_error", f"{type(exc).__name__}: {exc}", source)


def _listen(
    host: str,
    port: int,
    spool: Spool,
    max_body_bytes: int,
    trust_forwarded_for: bool,
    pipeline_metrics: Callable[[], dict[str, float]] | None = None,
    privacy: Privacy | None = None,
) -> tuple[Any, threading.Thread]:
    """uvicorn on a thread (never the main one: uvicorn would take over the signals)."""
    import uvicorn

    app = build_app(spool, max_body_bytes, trust_forwarded_for=trust_forwarded_for,
                    pipeline_metrics=pipeline_metrics, privacy=privacy)  # fmt: skip
    # uvicorn would take X-Forwarded-For (and -Proto) from any client on 127.0.0.1: only a
    # proxy the user has vouched for may set them
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", proxy_headers=trust_forwarded_for,
                            forwarded_allow_ips="*")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="collector", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the collector could not listen on {host}:{port}")
        time.sleep(0.01)
    return server, thread


def _serve(
    host: str,
    port: int,
    spool_dir: str,
    max_body_bytes: int,
    trust_forwarded_for: bool,
    log_format: str,
    ready: Any,
    stop: Any,
    metrics_conn: Any,
    spool_max_bytes: int,
    privacy: Privacy | None = None,
) -> None:
    """The collector's HTTP process: requests in, spool records fsynced, 200 out. The loader
    process reads the spool; it shares only files (the spool, its checkpoint) and the pipe
    that answers ``/metrics`` with the loader's counters."""
    import fcntl
    import os
    import signal

    from loader import logs

    logs.configure(log_format)
    for signum in (signal.SIGINT, signal.SIGTERM):  # the loader process decides when to stop
        signal.signal(signum, signal.SIG_IGN)
    parent = os.getppid()
    # One writer per spool: a collector left over from a killed loader exits (it watches its
    # parent) before this one opens the spool and takes the port.
    lock = open(Path(spool_dir) / "writer.lock", "wb")  # noqa: SIM115 - held for the process
    fcntl.flock(lock, fcntl.LOCK_EX)
    spool = Spool(spool_dir, max_pending_bytes=spool_max_bytes)
    asking = threading.Lock()

    def pipeline_metrics() -> dict[str, float]:
        with asking:
            metrics_conn.send(None)
            return metrics_conn.recv() if metrics_conn.poll(5) else {}

    try:
        server, thread = _listen(
            host, port, spool, max_body_bytes, trust_forwarded_for, pipeline_metrics, privacy
        )
    except OSError as exc:
        log.error("%s", exc)
        spool.close()
        return
    ready.set()
    while not stop.is_set() and os.getppid() == parent and thread.is_alive():
        spool.committed = spool.read_checkpoint()  # for backpressure: what the loader has done
        stop.wait(0.05)
    server.should_exit = True
    thread.join(timeout=10)
    spool.close()


class CollectorSource:
    """Serves the collector in a process of its own and yields the spooled events, enriched,
    in order.

    The HTTP process only parses requests and appends them to the spool (fsync, then 200);
    this process reads the spool, enriches and commits. Apart, neither waits for the other's
    Python work (one process would share one interpreter lock between HTTP and enrichment).
    Never ends by itself: ``stop()`` (the CLI calls it on SIGTERM/SIGINT) stops accepting
    requests, and iteration ends once everything spooled has been yielded.
    """

    protects_privacy = True  # records are protected before the spool (the pipeline must not)

    def __init__(
        self,
        host: str,
        port: int,
        spool_dir: str | Path,
        enrich: EnrichConfig | None = None,
        max_body_bytes: int = 1_000_000,
        trust_forwarded_for: bool = False,
        spool_max_bytes: int = 256 * 1024 * 1024,
        privacy: Privacy | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.privacy = privacy
        self.spool_max_bytes = spool_max_bytes
        self.spool_dir = Path(spool_dir)
        self.spool = Spool(spool_dir, writer=False)
        self.enrich = enrich or EnrichConfig()
        self.max_body_bytes = max_body_bytes
        self.trust_forwarded_for = trust_forwarded_for
        self._stop = threading.Event()
        self._read_to: Position = self.spool.committed
        self._start: Position = self.spool.committed
        self._process: Any = None
        self._http_stop: Any = None
        self.room = 0  # what the pipeline's open batch can still take (0: no limit)

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        import multiprocessing

        from loader import logs

        ctx = multiprocessing.get_context("spawn")  # not fork: DuckDB's threads are running
        ready, self._http_stop = ctx.Event(), ctx.Event()
        ours, theirs = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, name="persona-collector", daemon=True,
            args=(self.host, self.port, str(self.spool_dir), self.max_body_bytes,
                  self.trust_forwarded_for, logs.current_format(), ready, self._http_stop,
                  theirs, self.spool_max_bytes, self.privacy),
        )  # fmt: skip
        self._process.start()
        threading.Thread(target=_answer_metrics, args=(ours,), name="metrics", daemon=True).start()
        deadline = time.monotonic() + 60
        while not ready.wait(0.05):
            if not self._process.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the collector could not listen on {self.host}:{self.port}")
        log.info("collector listening on %s", self.name)

    def stop(self) -> None:
        """Stop accepting requests; iteration drains the spool and ends."""
        if self._http_stop is not None:
            self._http_stop.set()
        if self._process is not None:
            self._process.join(timeout=15)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._stop.set()

    def __iter__(self) -> Iterator[Chunk | None]:
        """Chunks of what the spool holds now (at most ``BLOCK_RECORDS``, and no more than the
        open batch can take, so a batch ends at its row limit): no record waits for a block to
        fill."""
        if self._process is None:
            self.start()
        records: list[dict] = []
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
        self.spool.close()


def _answer_metrics(conn: Any) -> None:
    """Answers the HTTP process's ``/metrics`` with this process's pipeline counters."""
    while True:
        try:
            conn.recv()
            conn.send(METRICS.pipeline_values())
        except (EOFError, OSError):
            return

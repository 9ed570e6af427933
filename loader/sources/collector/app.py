"""The collector's ASGI app: the tracker protocol's routes, answered once the spool has
their records, and a guard that refuses an oversized request head before any route sees it."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from loader.metrics import METRICS
from loader.privacy import Privacy
from loader.settings import DEFAULT
from loader.spool import Record, Spool, SpoolFull

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

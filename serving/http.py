"""The API over HTTP: a thin Starlette layer over ``serving.service.Api``.

Snowplow Signals' endpoints, as the official Python SDK calls them (``api_url`` is this
server, ``sandbox_token`` the bearer token):

    POST /api/v1/registry/attribute_groups/                       publish (create)
    PUT  /api/v1/registry/attribute_groups/{name}/versions/{v}    publish (update)
    GET  /api/v1/registry/attribute_groups/{name}[/versions/{v}]  get_attribute_group
    POST /api/v1/registry/services/                               publish (create)
    PUT  /api/v1/registry/services/{name}                         publish (update)
    GET  /api/v1/registry/services/{name}
    POST /api/v1/get-online-attributes     get_service_attributes, get_group_attributes
    POST /api/v1/registry/event_logs/ · PUT|GET|DELETE .../{name}   event logs (publish, ...)
    POST /api/v1/engines/publish · /engines/unpublish               start/stop an event log
    GET  /api/v1/event_log?name=&identifier=&format=json|narrative  get_agentic_context
    .../registry/interventions/..., /api/v1/interventions   (serving/interventions/routes.py)

Persona's own: ``POST /v1/decide``, ``GET /health`` (no token), ``GET /openapi.json``.

Browsers: ``POST /v1/decide`` (only) may also be called without the token by a page, with the
collector's ``sp`` cookie (the API shares the collector's host, so the browser sends it):
``Api.decide(..., browser=network_userid)`` then answers only about that browser's own device.
CORS (with credentials) is answered for the origins given (``--browser-origin``); a call from
another origin is refused.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.errors import BadRequest, Forbidden, ServingError, TooLarge, Unauthorized
from serving.service import MAX_IDENTIFIERS, Api

log = logging.getLogger("persona.serving.http")

MAX_BODY_BYTES = 1_000_000

DECIDE_SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Persona decision API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "sp_cookie": {"type": "apiKey", "in": "cookie", "name": "sp"}},
        "schemas": {
            "DecideRequest": {
                "type": "object",
                "description": "One visitor: at least one of domain_userid, user_id, "
                "domain_sessionid. Without a session id, the device's latest session is used.",
                "properties": {
                    "domain_userid": {"type": "string"},
                    "user_id": {"type": "string"},
                    "domain_sessionid": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "string"},
                               "description": "Columns of derived.profiles to return."},
                    "items": {"type": "array", "items": {"type": "string"},
                              "description": "Items on screen: scored as part of the session."},
                    "k": {"type": "integer", "minimum": 0, "maximum": 100, "default": 10},
                },
            },
            "Part": {
                "type": "object",
                "properties": {"as_of": {"type": ["string", "null"], "format": "date-time",
                                         "description": "When this part was computed."}},
            },
            "DecideResponse": {
                "type": "object",
                "properties": {
                    "user_id": {"type": ["string", "null"]},
                    "domain_sessionid": {"type": ["string", "null"]},
                    "profile": {"type": "object", "properties": {
                        "fields": {"type": "object"}, "known": {"type": "boolean"},
                        "as_of": {"type": ["string", "null"]}}},
                    "segments": {"type": "object", "properties": {
                        "segments": {"type": "array", "items": {"type": "string"}},
                        "as_of": {"type": ["string", "null"]}}},
                    "session": {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"type": "string"}},
                        "as_of": {"type": ["string", "null"]}}},
                    "recommendations": {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"type": "object", "properties": {
                            "product_id": {"type": "string"}, "score": {"type": "number"}}}},
                        "rule_set_version": {"type": ["string", "null"]},
                        "strategy": {"type": "string", "description":
                                     "live (scored with the session and affinities), "
                                     "popular:SEGMENT (the segment's popular items) or none"},
                        "precomputed": {"type": "array", "items": {"type": "string"}},
                        "as_of": {"type": ["string", "null"]}}},
                },
            },
            "Error": {"type": "object", "properties": {"detail": {"type": "string"}}},
        },
    },
    "paths": {
        "/v1/decide": {
            "post": {
                "summary": "Profile fields, segments and live-scored recommendations for a visitor",
                "description": "With the bearer token: any visitor. From a browser, without "
                "the token: the collector's sp cookie (sent along, credentials: 'include') "
                "identifies the browser, which may ask only about its own domain_userid (the "
                "device whose first event came with that cookie).",
                "security": [{"bearer": []}, {"sp_cookie": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DecideRequest"}}}},
                "responses": {
                    "200": {"description": "The decision", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/DecideResponse"}}}},
                    "400": {"description": "Malformed JSON or request"},
                    "401": {"description": "No or wrong bearer token (and no sp cookie)"},
                    "403": {"description": "A browser (sp cookie, no token) asked about a "
                            "device, session or user not its own, or from an origin not "
                            "allowed"},
                    "404": {"description": "An unknown profile field (named)"},
                    "413": {"description": f"A body over {MAX_BODY_BYTES} bytes"},
                },
            }
        },
        "/health": {"get": {"summary": "200 once the API serves", "responses": {
            "200": {"description": "Serving"}}}},
    },
}  # fmt: skip

Handler = Callable[[Request], Awaitable[Any]]


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body, default=str), status, media_type="application/json")


def build_app(
    api: Api,
    token: str,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    browser_origins: Iterable[str] = (),
    cookie_name: str = "sp",
    interventions: Any = None,
    forget: Any = None,
) -> Starlette:
    """``token``: the bearer token every endpoint but ``/health`` and ``/openapi.json`` needs;
    ``/v1/decide`` also takes a browser's ``cookie_name`` cookie instead, for its own device.
    ``browser_origins``: the pages' origins (``https://shop.example``) CORS lets read
    ``/v1/decide``; ``*`` for any. ``interventions``: a ``serving.interventions.Interventions``
    whose routes (the SDK's interventions calls) to add.
    ``forget`` (``privacy.live.LiveForget``): ``POST /v1/forget``
    runs a forget request in this process, which holds the warehouse; ``GET`` lists them."""
    expected = f"Bearer {token}".encode()
    origins = frozenset(browser_origins)

    def authorize(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):  # constant time: no timing oracle
            raise Unauthorized("a valid bearer token is required")

    async def body(request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise TooLarge(f"the body is over {max_body_bytes} bytes")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > max_body_bytes:
                raise TooLarge(f"the body is over {max_body_bytes} bytes")
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None

    def allowed(request: Request) -> str | None:
        """The request's Origin if CORS may answer it (or None); Forbidden if it has one that
        may not call at all. A page on the API's own origin needs no listing."""
        origin = request.headers.get("origin")
        if origin is None:
            return None
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin == own or "*" in origins or origin in origins:
            return origin
        raise Forbidden(f"origin {origin} may not call the API from a browser "
                        "(persona serve --browser-origin)")  # fmt: skip

    def cors(response: Response, origin: str | None) -> Response:
        response.headers["Vary"] = "Origin"
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    def endpoint(handler: Callable[[Request], Awaitable[Any]], *, auth: bool = True,
                 browser: bool = False) -> Handler:  # fmt: skip
        async def run(request: Request) -> Response:
            origin = None
            try:
                if browser:
                    origin = allowed(request)
                if auth:
                    authorize(request)
                result = await handler(request)
                response = result if isinstance(result, Response) else _json(200, result)
            except ServingError as exc:
                response = _json(exc.status, {"detail": str(exc)})
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                response = _json(500, {"detail": "internal error; the server log says why"})
            return cors(response, origin) if browser else response

        return run

    async def preflight(request: Request) -> Response:
        try:
            origin = allowed(request)
        except Forbidden as exc:
            return _json(403, {"detail": str(exc)})
        response = cors(Response(status_code=204), origin)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    # publishing a stream group backfills it from the warehouse: off the event loop
    async def post_group(request: Request) -> Any:
        return await run_in_threadpool(api.publish_group, await body(request))

    async def put_group(request: Request) -> Any:
        p = request.path_params
        where = (p["name"], p["version"])
        return await run_in_threadpool(api.publish_group, await body(request), where)

    async def get_group(request: Request) -> Any:
        p = request.path_params
        return api.get_group(p["name"], p.get("version"))

    async def post_service(request: Request) -> Any:
        return api.publish_service(await body(request))

    async def put_service(request: Request) -> Any:
        return api.publish_service(await body(request), where=request.path_params["name"])

    async def get_service(request: Request) -> Any:
        return api.get_service(request.path_params["name"])

    async def online(request: Request) -> Any:
        return api.online_attributes(await body(request))

    async def decide(request: Request) -> Any:
        if "authorization" in request.headers:  # a server: the token, for anyone
            authorize(request)
            return api.decide(await body(request))
        nuid = request.cookies.get(cookie_name)  # a browser: its own device only
        if not nuid:
            raise Unauthorized(
                "a valid bearer token is required (a browser: the collector's "
                f"{cookie_name} cookie, sent with credentials: 'include')"
            )
        return api.decide(await body(request), browser=nuid)

    # --- event logs and agentic context (serving.event_logs, serving.context)
    async def post_event_log(request: Request) -> Any:
        return api.event_logs.put(await body(request), create=True)

    async def put_event_log(request: Request) -> Any:
        name = request.path_params["name"]
        return api.event_logs.put(await body(request), create=False, where=name)

    async def get_event_log(request: Request) -> Any:
        return api.event_logs.response(request.path_params["name"])

    async def delete_event_log(request: Request) -> Any:
        return api.event_logs.delete(request.path_params["name"])

    def _event_log_names(doc: Any) -> list[str]:
        refs = doc.get("event_logs") if isinstance(doc, dict) else None
        if not isinstance(refs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) for r in refs
        ):
            raise BadRequest("event_logs must be a list of {name}")  # fmt: skip
        return [r["name"] for r in refs]

    async def engines_publish(request: Request) -> Any:  # rebuilds rings: off the event loop
        names = _event_log_names(await body(request))
        return await run_in_threadpool(api.event_logs.publish, names)

    async def engines_unpublish(request: Request) -> Any:
        return api.event_logs.unpublish(_event_log_names(await body(request)))

    async def event_log(request: Request) -> Any:
        from serving.context import agentic_context

        q = request.query_params
        if not q.get("name") or not q.get("identifier"):
            raise BadRequest("give name and identifier")
        budget = q.get("max_tokens")
        if budget is not None and not budget.isdigit():
            raise BadRequest(f"max_tokens must be a positive integer, got {budget!r}")
        got = await run_in_threadpool(agentic_context, api, q["name"], q["identifier"],
                                      q.get("format", "json"),
                                      int(budget) if budget else None)  # fmt: skip
        if isinstance(got, str):
            return Response(got, 200, media_type="text/plain; charset=utf-8")
        return got

    async def health(request: Request) -> Any:
        return api.health()

    async def openapi(request: Request) -> Any:
        return DECIDE_SCHEMA

    async def forget_one(request: Request) -> Any:
        from loader.errors import ConfigError

        data = await body(request)
        try:  # waits for the loader's batch and the refresh (503 if not in time): off the loop
            return await run_in_threadpool(forget.forget, data)
        except ConfigError as exc:
            raise BadRequest(str(exc)) from None

    async def forget_status(request: Request) -> Any:
        return await run_in_threadpool(forget.status)

    v1 = "/api/v1"
    routes = [
        Route(f"{v1}/registry/attribute_groups/", endpoint(post_group), methods=["POST"]),
        Route(f"{v1}/registry/attribute_groups", endpoint(post_group), methods=["POST"]),
        Route(f"{v1}/registry/attribute_groups/{{name}}/versions/{{version:int}}",
              endpoint(put_group), methods=["PUT"]),
        Route(f"{v1}/registry/attribute_groups/{{name}}/versions/{{version:int}}",
              endpoint(get_group), methods=["GET"]),
        Route(f"{v1}/registry/attribute_groups/{{name}}", endpoint(get_group), methods=["GET"]),
        Route(f"{v1}/registry/services/", endpoint(post_service), methods=["POST"]),
        Route(f"{v1}/registry/services", endpoint(post_service), methods=["POST"]),
        Route(f"{v1}/registry/services/{{name}}", endpoint(put_service), methods=["PUT"]),
        Route(f"{v1}/registry/services/{{name}}", endpoint(get_service), methods=["GET"]),
        Route(f"{v1}/get-online-attributes", endpoint(online), methods=["POST"]),
        Route(f"{v1}/registry/event_logs/", endpoint(post_event_log), methods=["POST"]),
        Route(f"{v1}/registry/event_logs", endpoint(post_event_log), methods=["POST"]),
        Route(f"{v1}/registry/event_logs/{{name}}", endpoint(put_event_log), methods=["PUT"]),
        Route(f"{v1}/registry/event_logs/{{name}}", endpoint(get_event_log), methods=["GET"]),
        Route(f"{v1}/registry/event_logs/{{name}}", endpoint(delete_event_log),
              methods=["DELETE"]),
        Route(f"{v1}/engines/publish", endpoint(engines_publish), methods=["POST"]),
        Route(f"{v1}/engines/unpublish", endpoint(engines_unpublish), methods=["POST"]),
        Route(f"{v1}/event_log", endpoint(event_log), methods=["GET"]),
        Route("/v1/decide", endpoint(decide, auth=False, browser=True), methods=["POST"]),
        Route("/v1/decide", preflight, methods=["OPTIONS"]),
        Route("/health", endpoint(health, auth=False), methods=["GET"]),
        Route("/openapi.json", endpoint(openapi, auth=False), methods=["GET"]),
    ]  # fmt: skip
    if interventions is not None:  # serving/interventions/routes.py
        from serving.interventions.routes import routes as intervention_routes

        routes += intervention_routes(interventions, endpoint=endpoint, body=body,
                                      authorize=authorize)  # fmt: skip
    if forget is not None:
        routes += [Route("/v1/forget", endpoint(forget_one), methods=["POST"]),
                   Route("/v1/forget", endpoint(forget_status), methods=["GET"])]  # fmt: skip
    app = Starlette(routes=routes)
    app.state.max_identifiers = MAX_IDENTIFIERS
    return app

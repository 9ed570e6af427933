"""The interventions' HTTP surface, as the Signals SDK calls it (all under ``/api/v1/``, with
the bearer token):

    GET    registry/interventions/                      list
    POST   registry/interventions/                      publish (create; 400 if it exists)
    GET    registry/interventions/{name}[/versions/{v}]
    PUT    registry/interventions/{name}/versions/{v}   publish (update), unpublish
    DELETE registry/interventions/{name}/versions/{v}
    POST   interventions?{key}={id}...                  push_intervention
    GET    interventions?{key}={id}...                  pull_interventions (text/event-stream)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from serving.errors import BadRequest, ServingError
from serving.interventions.engine import Interventions, parse_targets

Handler = Callable[[Request], Awaitable[Response]]


def routes(interventions: Interventions, *, endpoint: Callable[..., Handler],
           body: Callable[[Request], Awaitable[Any]],
           authorize: Callable[[Request], None]) -> list[Route]:  # fmt: skip
    """``endpoint``, ``body`` and ``authorize``: the JSON wrapper, body reader and token check
    of ``serving.http.build_app``."""
    registry = interventions.rules

    async def listing(request: Request) -> Any:
        return list(registry.specs.values())

    async def create(request: Request) -> Any:
        spec = await body(request)
        if not isinstance(spec, dict):
            raise BadRequest("an intervention must be a JSON object")
        return registry.put(spec, create=True)

    async def update(request: Request) -> Any:
        spec = await body(request)
        if not isinstance(spec, dict):
            raise BadRequest("an intervention must be a JSON object")
        p = request.path_params
        return registry.put(spec, where=(p["name"], p["version"]))

    async def get(request: Request) -> Any:
        p = request.path_params
        return registry.get(p["name"], p.get("version"))

    async def delete(request: Request) -> Any:
        p = request.path_params
        registry.delete(p["name"], p["version"])
        return {"deleted": True}

    async def push(request: Request) -> Any:
        targets = parse_targets(request.query_params.multi_items())
        return interventions.push(await body(request), targets)

    async def subscribe(request: Request) -> Response:
        from serving.http import _json

        try:
            authorize(request)
            targets = parse_targets(request.query_params.multi_items())
            if not targets:
                raise BadRequest("name at least one target: ?domain_userid=ID (or another key)")
            last = request.headers.get("last-event-id", "").strip()
            if last and not last.isdigit():
                raise BadRequest(f"Last-Event-ID {last!r} is not an id this server sent")
        except ServingError as exc:
            return _json(exc.status, {"detail": str(exc)})
        hub = interventions.hub
        sub, replay = hub.subscribe(targets, int(last) if last else None,
                                    asyncio.get_running_loop())  # fmt: skip
        return StreamingResponse(
            hub.stream(sub, replay), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    v1 = "/api/v1"
    one = f"{v1}/registry/interventions/{{name}}/versions/{{version:int}}"
    return [
        Route(f"{v1}/registry/interventions/", endpoint(listing), methods=["GET"]),
        Route(f"{v1}/registry/interventions", endpoint(listing), methods=["GET"]),
        Route(f"{v1}/registry/interventions/", endpoint(create), methods=["POST"]),
        Route(f"{v1}/registry/interventions", endpoint(create), methods=["POST"]),
        Route(one, endpoint(get), methods=["GET"]),
        Route(one, endpoint(update), methods=["PUT"]),
        Route(one, endpoint(delete), methods=["DELETE"]),
        Route(f"{v1}/registry/interventions/{{name}}", endpoint(get), methods=["GET"]),
        Route(f"{v1}/interventions", endpoint(push), methods=["POST"]),
        Route(f"{v1}/interventions", subscribe, methods=["GET"]),
    ]

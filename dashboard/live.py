"""The live process (``persona serve``) as the dashboard reaches it: the collector's
``/metrics`` (Prometheus' text format, loader/metrics.py: the collector's and the loader's
counters), the API's ``/health`` (the refresh, the snapshot), and ``POST /v1/forget`` (the one
way to change a warehouse the live process holds: ARCHITECTURE.md, decision 10).

Where it is: ``PERSONA_COLLECTOR_URL`` and ``PERSONA_API_URL`` (``persona dashboard
--collector URL --api URL`` sets them); the token for ``/v1/forget`` only from
``PERSONA_API_TOKEN``. Reads wait at most ``TIMEOUT`` seconds, both at once, so a dead or
unreachable process costs a page about a second, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

API_ENV, COLLECTOR_ENV, TOKEN_ENV = "PERSONA_API_URL", "PERSONA_COLLECTOR_URL", "PERSONA_API_TOKEN"
TIMEOUT = 1.0  # seconds a health read may take
FORGET_TIMEOUT = 180.0  # the live process waits up to 120 s for its loader and refresh


class LiveError(Exception):
    """A live endpoint misconfigured or refusing; the message says which and what to do."""


def check_url(key: str, value: str) -> str:
    """``value`` as a base URL, or LiveError naming the key."""
    parsed = urllib.parse.urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise LiveError(f"{key}: want a URL like http://127.0.0.1:8080, got {value!r}")
    return value.strip().rstrip("/")


@dataclass(frozen=True)
class Endpoints:
    collector: str | None
    api: str | None
    token: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Endpoints:
        collector, api = env.get(COLLECTOR_ENV, "").strip(), env.get(API_ENV, "").strip()
        return cls(
            check_url(COLLECTOR_ENV, collector) if collector else None,
            check_url(API_ENV, api) if api else None,
            env.get(TOKEN_ENV) or None,
        )


@dataclass(frozen=True)
class Reading:
    """One endpoint read: its values when it answered, else why not."""

    url: str
    values: dict[str, Any] | None
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.values is not None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus' text format as ``{'name{labels}': value}`` (comments and blank lines
    skipped; a sample's optional timestamp ignored)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.rpartition("}")
            name += "}"
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if fields:
            try:
                out[name.strip()] = float(fields[0])
            except ValueError:
                continue  # not a sample: skipped rather than failing the page
    return out


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
        return f"no answer in {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(reason).strip() or type(exc).__name__


def read(url: str, timeout: float = TIMEOUT) -> Reading:
    """GET one endpoint: ``/metrics`` parsed, anything else as JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read().decode("utf-8", errors="replace")
        values: Any = parse_metrics(body) if url.endswith("/metrics") else json.loads(body)
        if not isinstance(values, dict):
            return Reading(url, None, "not a JSON object")
        return Reading(url, dict(values))
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused, bad JSON
        return Reading(url, None, _why(exc, timeout))


def read_health(
    endpoints: Endpoints, timeout: float = TIMEOUT
) -> tuple[Reading | None, Reading | None]:
    """The collector's ``/metrics`` and the API's ``/health``, read at the same time (None for
    an endpoint not configured)."""
    urls = [
        None if endpoints.collector is None else f"{endpoints.collector}/metrics",
        None if endpoints.api is None else f"{endpoints.api}/health",
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [None if u is None else pool.submit(read, u, timeout) for u in urls]
        collector, api = (None if f is None else f.result() for f in futures)
    return collector, api


def forget(endpoints: Endpoints, kind: str, value: str, mode: str,
           timeout: float = FORGET_TIMEOUT) -> dict[str, Any]:  # fmt: skip
    """``POST /v1/forget`` to the live process (privacy/live.py): its answer (request id,
    status, rows removed per table), or LiveError with the server's reason."""
    if endpoints.api is None:
        raise LiveError(f"{API_ENV} is not set")
    if not endpoints.token:
        raise LiveError(f"set {TOKEN_ENV} (the live process's token) where the dashboard runs")
    request = urllib.request.Request(
        f"{endpoints.api}/v1/forget",
        data=json.dumps({"kind": kind, "id": value, "mode": mode}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {endpoints.token}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("detail", detail)
        hint = f" (check {TOKEN_ENV})" if exc.code == 401 else ""
        state = (
            "nothing was deleted"
            if exc.code < 500 or exc.code == 503  # 503: the loader or refresh did not pause
            else "the server's log says why; GET /v1/forget lists the requests"
        )
        raise LiveError(
            f"{endpoints.api} refused the request: {exc.code} {detail}{hint}; {state}"
        ) from None
    except (OSError, ValueError) as exc:
        why = _why(exc, timeout)
        state = (
            "it may still be running there: GET /v1/forget lists the requests"
            if why.startswith("no answer")
            else "nothing was deleted"
        )
        raise LiveError(f"{endpoints.api} did not answer ({why}); {state}") from None
    if not isinstance(answer, dict):
        raise LiveError(f"{endpoints.api} answered something other than a JSON object")
    answer["seconds"] = round(time.monotonic() - started, 2)
    return answer

"""Webhooks: each fired intervention POSTed to every configured endpoint, at least once.

- **Signed**: ``Persona-Signature: t=UNIX,v1=HEX``, HEX the HMAC-SHA256 of ``"{t}." + body``
  under the endpoint's secret (from the environment only: ``PERSONA_WEBHOOK_SECRET_<NAME>`` or
  ``PERSONA_WEBHOOK_SECRET``); ``Persona-Delivery-Id`` names the delivery (the same on every
  retry and after a restart: receivers deduplicate on it), ``Persona-Attempt`` counts from 1.
- **Durable**: the delivery row is committed (``serving.interventions.outbox``) before the
  first attempt; each attempt's outcome is written back; ``pending`` rows are sent again after
  a restart.
- **Retries**: on a timeout, a connection error, 408 or a 5xx, after an exponential backoff
  with jitter (``backoff * 2**(n-1)``, capped, then half of it random); on 429 after the
  ``Retry-After`` the endpoint asked for (seconds or an HTTP date). Any other answer ends the
  delivery: 2xx ``delivered``; a redirect (never followed) or another 4xx ``dead`` at once;
  after ``attempts`` tries ``dead``, with the last error (``interventions.dead_letters``).
- **Isolated**: each endpoint has its own queue and ``concurrency`` workers (and connection
  pool); a slow, hanging or failing endpoint holds only its own workers.
- **Allow-list**: only ``http``/``https`` URLs whose host (or host:port) is allowed.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from loader.errors import ConfigError
from serving.interventions.outbox import Delivery, Outbox

log = logging.getLogger("persona.serving.webhooks")

SECRET_ENV = "PERSONA_WEBHOOK_SECRET"
MAX_RETRY_AFTER = 3600.0
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    secret: bytes
    concurrency: int = 4
    timeout: float = 5.0
    attempts: int = 8
    backoff: float = 1.0
    max_backoff: float = 300.0


def parse_endpoints(specs: Sequence[str], allow: Sequence[str], *, concurrency: int = 4,
                    timeout: float = 5.0, attempts: int = 8, backoff: float = 1.0,
                    environ: Any = None) -> list[Endpoint]:  # fmt: skip
    """``--webhook [NAME=]URL`` (repeatable) checked against ``--webhook-allow HOST[:PORT]``
    (default: the hosts the --webhook URLs name); a bad one fails fast, naming it."""
    env = os.environ if environ is None else environ
    allowed = {a.lower() for a in allow}
    out: list[Endpoint] = []
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or "://" in name:
            name, url = "", spec
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--webhook {spec!r}: only http(s)://HOST[:PORT]/PATH URLs")
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        name = name or re.sub(r"[^A-Za-z0-9_]", "_", f"{host}_{port}")
        if not _NAME.fullmatch(name):
            raise ConfigError(f"--webhook {spec!r}: the name must be letters, digits, underscores")
        if allowed and host not in allowed and f"{host}:{port}" not in allowed:
            raise ConfigError(f"--webhook {spec!r}: {host}:{port} is not in --webhook-allow "
                              f"({', '.join(sorted(allowed))})")  # fmt: skip
        keys = (f"{SECRET_ENV}_{name.upper()}", SECRET_ENV)
        secret = next((env[k] for k in keys if env.get(k)), None)
        if not secret:
            raise ConfigError(f"--webhook {spec!r}: set {keys[0]} or {keys[1]} to the HMAC "
                              "secret the receiver checks signatures with")  # fmt: skip
        if any(e.name == name for e in out):
            raise ConfigError(f"--webhook {spec!r}: the name {name!r} is given twice")
        out.append(Endpoint(name, url, secret.encode(), concurrency, timeout, attempts, backoff))
    return out


def sign(secret: bytes, body: bytes, ts: int) -> str:
    digest = hmac.new(secret, b"%d." % ts + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, tolerance: float | None = 300) -> bool:
    """What a receiver does (and the tests): the signature matches, and is recent."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if tolerance is not None and abs(time.time() - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, ts), header)


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


class _Queue:
    """One endpoint: a heap of deliveries by due time, its workers and its HTTP client."""

    def __init__(self, endpoint: Endpoint, outbox: Outbox) -> None:
        import httpx

        self.endpoint = endpoint
        self.outbox = outbox
        self.heap: list[tuple[float, int, Delivery]] = []
        self.order = itertools.count()
        self.cond = threading.Condition()
        self.stopped = False
        self.in_flight = 0
        self.client = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(endpoint.timeout),
            limits=httpx.Limits(max_connections=endpoint.concurrency,
                                max_keepalive_connections=endpoint.concurrency),
            headers={"User-Agent": "persona-webhooks/1"},
        )  # fmt: skip
        self.threads = [
            threading.Thread(target=self._work, name=f"webhook-{endpoint.name}-{i}", daemon=True)
            for i in range(endpoint.concurrency)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def put(self, delivery: Delivery) -> None:
        with self.cond:
            heapq.heappush(self.heap, (delivery.due, next(self.order), delivery))
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def depth(self) -> int:
        with self.cond:
            return len(self.heap) + self.in_flight

    def _next(self) -> Delivery | None:
        with self.cond:
            while not self.stopped:
                if self.heap:
                    wait = self.heap[0][0] - time.time()
                    if wait <= 0:
                        self.in_flight += 1
                        return heapq.heappop(self.heap)[2]
                    self.cond.wait(min(wait, 1.0))
                else:
                    self.cond.wait(1.0)
        return None

    def _work(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                self._attempt(delivery)
            except Exception:  # a bug must not kill the worker: the row stays pending
                log.exception("webhook %s: delivery %s failed", self.endpoint.name,
                              delivery.delivery_id)  # fmt: skip
            finally:
                with self.cond:
                    self.in_flight -= 1

    def _attempt(self, d: Delivery) -> None:
        import httpx

        e = self.endpoint
        d.attempts += 1
        headers = {
            "Content-Type": "application/json", "Persona-Delivery-Id": d.delivery_id,
            "Persona-Attempt": str(d.attempts),
            "Persona-Signature": sign(e.secret, d.body, int(time.time())),
        }  # fmt: skip
        status: int | None = None
        wait: float | None = None
        try:
            response = self.client.post(e.url, content=d.body, headers=headers)
            status = response.status_code
            if 200 <= status < 300:
                self.outbox.attempted(d.delivery_id, "delivered", d.attempts, status, None, None)
                return
            if 300 <= status < 400:
                where = response.headers.get("location", "?")
                error = f"HTTP {status}: a redirect (to {where}) is not followed"
                self._give_up(d, status, error)
                return
            error = f"HTTP {status}: {response.text[:200]}"
            if status == 429:
                wait = min(retry_after(response.headers.get("retry-after")) or 0.0,
                           MAX_RETRY_AFTER) or None  # fmt: skip
            elif status != 408 and status < 500:
                self._give_up(d, status, error)
                return
        except httpx.TimeoutException as exc:
            error = f"timeout after {e.timeout} s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        if d.attempts >= e.attempts:
            self._give_up(d, status, f"{error} (gave up after {d.attempts} attempts)")
            return
        if wait is None:
            step = min(e.max_backoff, e.backoff * 2 ** (d.attempts - 1))
            wait = step / 2 + random.uniform(0, step / 2)
        d.due = time.time() + wait
        when = datetime.fromtimestamp(d.due, UTC)
        self.outbox.attempted(d.delivery_id, "pending", d.attempts, status, error, when)
        self.put(d)

    def _give_up(self, d: Delivery, status: int | None, error: str) -> None:
        log.warning("webhook %s: delivery %s is dead: %s", self.endpoint.name, d.delivery_id,
                    error)  # fmt: skip
        self.outbox.attempted(d.delivery_id, "dead", d.attempts, status, error, None)


class Deliverer:
    """The endpoints' queues; ``enqueue`` after the outbox committed the deliveries."""

    def __init__(self, endpoints: Iterable[Endpoint], outbox: Outbox) -> None:
        self.endpoints = {e.name: e for e in endpoints}
        self.outbox = outbox
        self.queues = {name: _Queue(e, outbox) for name, e in self.endpoints.items()}

    def start(self) -> None:
        for q in self.queues.values():
            q.start()

    def enqueue(self, deliveries: Iterable[Delivery]) -> None:
        for d in deliveries:
            self.queues[d.endpoint].put(d)

    def stop(self) -> None:
        for q in self.queues.values():
            q.stop()
        for q in self.queues.values():
            for t in q.threads:
                t.join(timeout=max(1.0, q.endpoint.timeout + 1))
            q.client.close()
        self.outbox.close()

    def status(self) -> dict[str, Any]:
        return {"webhook_queue": {n: q.depth() for n, q in self.queues.items()}}

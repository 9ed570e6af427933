"""The HTTP protocol the collector's uvicorn runs: uvicorn's httptools protocol with deadlines
for a request's head and body and a cap on open connections, and the open-file budget they
need."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from loader.metrics import METRICS
from loader.sources.collector.config import Limits

log = logging.getLogger("persona.collector")

# File descriptors kept free of connections: the spool's segment, checkpoint reads, the lock,
# pipes, the event loop's own. The accept backlog needs as many again as the connections: a
# burst is accepted before the connections over the limit are closed.
FD_RESERVE = 64


def limited_protocol(limits: Limits) -> type:
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


def fit_connections(wanted: int) -> int:
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

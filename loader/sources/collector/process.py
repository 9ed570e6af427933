"""The collector's HTTP process: uvicorn on a thread, the spool's one writer, started by
``CollectorSource`` and told to stop by a pipe. It shares only files and pipes with the loader
process."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loader.errors import SourceError
from loader.metrics import METRICS
from loader.sources.collector.app import build_app
from loader.sources.collector.config import CollectorConfig
from loader.sources.collector.protocol import fit_connections, limited_protocol
from loader.spool import Spool, lock_writer

log = logging.getLogger("persona.collector")

# How long a new collector waits for the spool's writer lock: a collector left over from a
# killed loader lets go within moments (it watches its parent, and gives requests in flight
# SHUTDOWN_SECONDS to finish).
LEFTOVER_SECONDS = 5.0
SHUTDOWN_SECONDS = 3


def listen(
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
                            forwarded_allow_ips="*", http=limited_protocol(limits), ws="none",
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


def serve(config: CollectorConfig, ready: Any, stop: Any, metrics_conn: Any) -> None:
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

    limits = replace(config.limits, max_connections=fit_connections(config.limits.max_connections))
    try:
        server, thread = listen(replace(config, limits=limits), spool, pipeline_metrics)
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


def answer_metrics(conn: Any) -> None:
    """Answers the HTTP process's ``/metrics`` with this process's pipeline counters."""
    with conn:
        while True:
            try:
                conn.recv()
                conn.send(METRICS.pipeline_values())
            except (EOFError, OSError):
                return

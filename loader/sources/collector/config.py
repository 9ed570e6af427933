"""The collector's settings, as one value its HTTP process is started with."""

from __future__ import annotations

from dataclasses import dataclass

from loader.privacy import Privacy
from loader.settings import DEFAULT, Settings


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

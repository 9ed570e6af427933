"""Turn ``--source`` and ``--sink`` URIs into objects, failing fast with what would work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from loader.enrich import EnrichConfig
from loader.errors import ConfigError
from loader.privacy import Privacy
from loader.settings import DEFAULT, SINKS_HELP, SOURCES_HELP, Settings
from loader.sinks.base import Sink
from loader.sources.base import Source


def open_source(
    uri: str,
    settings: Settings = DEFAULT,
    enrich: EnrichConfig | None = None,
    privacy: Privacy | None = None,
) -> Source:
    """The source ``uri`` names, with the settings that concern it (the collector's)."""
    scheme, _, rest = uri.partition(":")
    if scheme == "http":
        from loader.sources.collector import CollectorConfig, CollectorSource

        parts = urlsplit(uri)
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"--source {uri}: {exc}") from exc
        if not parts.hostname or port is None:
            raise ConfigError(f"--source {uri}: give the address to listen on, http://HOST:PORT")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            extra = uri[len(f"http://{parts.netloc}") :]
            raise ConfigError(
                f"--source {uri}: the collector takes no path or parameters ({extra!r}); "
                "give the address to listen on, http://HOST:PORT"
            )
        config = CollectorConfig.from_settings(parts.hostname, port, settings, privacy)
        return CollectorSource(config, enrich)
    if scheme == "file" and rest:
        from loader.sources.tsv import TsvFileSource

        if rest != "-" and not Path(rest).is_file():
            raise ConfigError(f"--source {uri}: no such file {rest!r} (use file:- for stdin)")
        return TsvFileSource(rest)
    if scheme == "csv" and rest:
        from loader.sources.csv import CsvFileSource

        if not Path(rest).is_file():
            raise ConfigError(f"--source {uri}: no such file {rest!r}")
        return CsvFileSource(rest, privacy)
    if scheme == "tail" and rest:
        from loader.sources.tail import TailSource

        return TailSource(rest)
    if scheme == "kafka":
        from loader.sources.kafka import KafkaSource, parse_uri

        return KafkaSource(parse_uri(uri), connect_timeout=settings.kafka_connect_timeout)
    if scheme == "synthetic":
        from loader.sources.synthetic import SyntheticConfig, SyntheticSource

        if rest and not rest.startswith("?"):
            raise ConfigError(
                f"--source {uri}: parameters go after a '?', as in "
                f"synthetic:?{rest.lstrip('/')}; allowed: days, end, seed, users"
            )
        query = dict(_params(uri, rest[1:], {"users", "days", "seed", "end"}))
        end = query.pop("end", None)
        size = {key: _integer(uri, key, value) for key, value in query.items()}
        try:
            return SyntheticSource(SyntheticConfig.ending(_moment(uri, end), **size))
        except ValueError as exc:
            raise ConfigError(f"--source {uri}: {exc}") from exc
    raise ConfigError(f"--source {uri!r} is not a source I know; use one of: {SOURCES_HELP}")


def default_channel(source: str) -> str:
    """One Snowflake channel per host and source: each resumes only from its own positions."""
    import hashlib
    import socket

    return f"persona-{socket.gethostname()}-{hashlib.sha1(source.encode()).hexdigest()[:8]}"


def open_sink(uri: str, channel: str = "", streaming: bool = False) -> Sink:
    """``streaming``: the source does not end (a collector, tail, Kafka), so the process runs
    for days; a finite source's sink is set up for a bulk load instead."""
    scheme, _, rest = uri.partition(":")
    if scheme == "duckdb" and rest:
        from loader.sinks.duckdb import DuckDBSink

        if streaming:
            return DuckDBSink.streaming(rest)
        sink = DuckDBSink(rest)
        sink.bulk_load()
        return sink
    if scheme == "snowflake" and rest:
        from loader.sinks.snowflake import connect

        return connect(rest, channel)
    raise ConfigError(f"--sink {uri!r} is not a sink I know; use one of: {SINKS_HELP}")


def _params(uri: str, query: str, allowed: set[str]) -> list[tuple[str, str]]:
    """A query string's parameters; an unknown, repeated or malformed one fails, named."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"--source {uri}: malformed parameters {query!r} ({exc})") from exc
    seen: set[str] = set()
    for key, _ in pairs:
        if key not in allowed:
            raise ConfigError(
                f"--source {uri}: unknown parameter {key!r}; allowed: {sorted(allowed)}"
            )
        if key in seen:
            raise ConfigError(f"--source {uri}: parameter {key!r} given twice")
        seen.add(key)
    return pairs


def _integer(uri: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"--source {uri}: {key} must be an integer, got {value!r}") from exc


def _moment(uri: str, value: str | None) -> datetime | None:
    """``end``: a date (midnight) or an ISO date-time, naive UTC or with an offset."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"--source {uri}: end must be a date or date-time (2026-01-31, "
            f"2026-01-31T12:00:00), got {value!r}"
        ) from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment

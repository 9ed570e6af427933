"""``persona serve --warehouse snowflake`` (or ``PERSONA_TARGET=snowflake``): the same API over
a Snowflake account, whose dynamic tables refresh themselves (no dbt runs here).

- Batch attributes: the serving tables (``profiles``, ``segment_membership``, the served rule
  set, ...) are read every ``--sync-seconds`` and their changed rows written to the online
  store (``serving/batch.py`` with the Snowflake dialect). A failed sync (a table missing, the
  account unreachable) is logged and retried; the store keeps the last good values and
  ``/health`` says how old they are. A broken session is opened again.
- Stream attributes: from the live event stream. A collector (``--source http://...``) or any
  other finite or tailing source: the events go on to ``ATOMIC.EVENTS`` through the Snowpipe
  Streaming sink (loader/sinks/snowflake.py), acknowledged only once committed there, so
  nothing is lost. A Kafka topic (``--source kafka://...``): a consumer group of this
  process's own (``persona-serving`` unless the URI names one), stream attributes only; the
  loader that writes the warehouse keeps its own group.
- After a restart, stream attributes are rebuilt from Snowflake's recent ``ATOMIC.EVENTS``.

Not here, because they need this process to hold a DuckDB warehouse: interventions (their
durable record is DuckDB tables), ``POST /v1/forget`` and the daily retention (``persona
forget`` / ``persona retention`` run against the warehouse), the read-only snapshot.

Connection: persona/snowflake/connection.py (key-pair auth from SNOWFLAKE_* variables), as the
role ``SNOWFLAKE_ROLE`` or PERSONA_TRANSFORMER (which reads ATOMIC and the derived tables in
clear: an analyst's role would see masked ids); database SNOWFLAKE_DATABASE (PERSONA), schema
SNOWFLAKE_SCHEMA (DERIVED). The sink connects as the loader does (PERSONA_LOADER).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loader.errors import ConfigError
from loader.logs import redact
from serving.batch import SNOWFLAKE, BatchSync
from serving.definitions import Group
from serving.live import Freshness, Live, Settings, Warehouse, recent_events

log = logging.getLogger("persona.serving.snowflake")

# The realtime layer's serving tables: a sync without one of them fails (the store keeps its
# values) instead of leaving its keys alone. The rule-set tables come with a retrain, later.
REQUIRED = frozenset({"profiles", "segment_membership", "identity_map", "interactions"})
ROLE = "PERSONA_TRANSFORMER"
KAFKA_GROUP = "persona-serving"


def stream_source(uri: str) -> str:
    """A Kafka source URI with this process's own consumer group (``persona-serving``) and,
    for a new group, the topic's end (the recent past comes from ATOMIC.EVENTS), unless the
    URI says otherwise; other sources as given."""
    if not uri.startswith("kafka:"):
        return uri
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {k for k, _ in query}
    query += [(k, v) for k, v in (("group", KAFKA_GROUP), ("offset_reset", "latest"))
              if k not in given]  # fmt: skip
    return urlunsplit(parts._replace(query=urlencode(query)))


def connector(env: Mapping[str, str] = os.environ) -> Callable[[], Any]:
    """Opens a connector session from the environment; checked (naming the variable) now."""
    from persona.snowflake import connection

    if missing := connection.missing(env):
        raise ConfigError(f"--warehouse snowflake: set {', '.join(missing)} (key-pair auth)")
    options = connection.options(
        ROLE, env,
        database=env.get("SNOWFLAKE_DATABASE", "PERSONA"),
        schema=env.get("SNOWFLAKE_SCHEMA", "DERIVED"),
        warehouse=env.get("SNOWFLAKE_WAREHOUSE", "PERSONA_WH"),
        client_session_keep_alive=True,
        session_parameters={"QUERY_TAG": "persona-serve"},
    )  # fmt: skip

    def connect() -> Any:
        import snowflake.connector

        return snowflake.connector.connect(**options)

    return connect


def snowpipe_sink(source: str, env: Mapping[str, str] = os.environ) -> Any:
    """The loader's Snowpipe Streaming sink into DATABASE.ATOMIC, on the loader's channel."""
    from loader.uris import default_channel, open_sink

    database = env.get("SNOWFLAKE_DATABASE", "PERSONA")
    return open_sink(f"snowflake:{database}.ATOMIC", default_channel(source), streaming=True)


class StreamOnly:
    """The sink of a Kafka source: the events feed the stream attributes and go no further
    (another loader, in its own consumer group, writes them to the warehouse), so the group's
    offsets move on once the stream has seen a batch."""

    def __init__(self, columns: set[str]) -> None:
        self.columns = columns

    def write(self, batch: Any) -> None:
        pass

    def entity_columns(self) -> set[str]:
        return self.columns

    def close(self) -> None:
        pass


class Syncer(Freshness):
    """The serving tables into the online store, one sync at a time on the main thread, over a
    session of its own (opened again after an error that is not the SQL's)."""

    what = "Snowflake sync"

    def __init__(self, sync: BatchSync, connect: Callable[[], Any]) -> None:
        super().__init__(sync)
        self.connect = connect
        self.con: Any = None

    def cursor(self) -> Any:
        if self.con is None:
            self.con = self.connect()
        return self.con.cursor()

    def sync_once(self) -> bool:
        started = time.perf_counter()
        try:
            synced = self.sync.sync(self.cursor())
        except Exception as exc:
            if not _sql_error(exc):
                self.close()
            return self._failed(exc)
        self._succeeded(started)
        log.info("synced from Snowflake in %.2f s; %d keys written", self.last_seconds or 0.0,
                 synced.keys)  # fmt: skip
        return True

    def close(self) -> None:
        con, self.con = self.con, None
        if con is not None:
            try:
                con.close()
            except Exception:  # a broken session may not close cleanly: it is dropped anyway
                log.debug("closing the sync's session failed", exc_info=True)


def _sql_error(exc: Exception) -> bool:
    """A missing table or a query Snowflake refused: the session itself is fine."""
    from snowflake.connector.errors import ProgrammingError

    return isinstance(exc, LookupError | ProgrammingError)


class SnowflakeWarehouse(Warehouse):
    """``connect`` opens a connector session (default: from the environment); ``sink`` makes
    the sink of a non-Kafka source (default: Snowpipe Streaming). Tests pass fakesnow's."""

    dialect = SNOWFLAKE
    required = REQUIRED

    def __init__(self, settings: Settings, connect: Callable[[], Any] | None = None,
                 sink: Callable[[str], Any] | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.schema = settings.schema
        self.connect = connect or connector()
        self.make_sink = sink or snowpipe_sink
        # the history's reads (at start, and when a group is published: the API's thread)
        # have their own session, so they never wait for a sync
        try:
            self.reader = self.connect()
        except Exception as exc:  # the connector's own message says which part failed
            raise ConfigError(
                f"--warehouse snowflake: cannot connect ({exc}); check SNOWFLAKE_ACCOUNT, the "
                "user's key pair and SNOWFLAKE_ROLE (docs/serving.md, 'Against Snowflake')"
            ) from exc
        self.lock = threading.Lock()
        self.syncer: Syncer | None = None
        self._sink: Any = None

    def recent_events(self, groups: list[Group], since_seconds: float,
                      columns: set[str] | None = None) -> Iterator[Mapping[str, Any]]:  # fmt: skip
        with self.lock:
            yield from recent_events(self.reader.cursor(), groups, since_seconds, columns,
                                     SNOWFLAKE)  # fmt: skip

    def cursor(self) -> Any:
        assert self.syncer is not None
        return self.syncer.cursor()

    def first_sync(self, sync: BatchSync) -> None:
        self.freshness = self.syncer = Syncer(sync, self.connect)
        self.syncer.sync_once()

    def sink(self, source: Any) -> Any:
        uri = self.settings.source
        if uri.startswith("kafka:"):
            log.info("%s: stream attributes only (the loader that writes ATOMIC.EVENTS has "
                     "its own consumer group)", redact(uri))  # fmt: skip
            self._sink = StreamOnly(self._entity_columns())
        else:
            self._sink = self.make_sink(uri)
        return self._sink

    def _entity_columns(self) -> set[str]:
        from loader.contract import ENTITY_COLUMN_RE

        with self.lock:
            rows = self.reader.cursor().execute(
                "select column_name from information_schema.columns where lower(table_schema) "
                "= 'atomic' and lower(table_name) = 'events' "
                "and table_catalog = current_database()").fetchall()  # fmt: skip
        return {n.lower() for (n,) in rows if ENTITY_COLUMN_RE.fullmatch(n.lower())}

    def attach(self, live: Live, registry: Any, engine: Any, store: Any,
               sync: BatchSync) -> None:  # fmt: skip
        s = self.settings
        log.info(
            "against Snowflake: no interventions (their record is DuckDB tables in the "
            "warehouse), no POST /v1/forget and no retention (run persona forget and "
            "persona retention against the account), no snapshot (query Snowflake)"
        )
        if s.retention:
            log.warning("--retention is ignored against Snowflake")

    def status(self) -> dict[str, Any]:
        return {**super().status(), "warehouse": "snowflake",
                "sync_seconds": self.settings.sync_seconds}  # fmt: skip

    def run(self, live: Live) -> None:
        """A sync every ``sync_seconds`` (none with ``--no-refresh``) until the process stops."""
        assert self.syncer is not None
        while not live.stop_event.wait(self.settings.sync_seconds):
            if self.settings.refresh:
                self.syncer.sync_once()
                live.sample_memory()

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self.syncer is not None:
            self.syncer.close()
        self.reader.close()

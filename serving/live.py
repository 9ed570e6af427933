"""The live process: collector → loader → DuckDB, a refresh loop (dbt in-process), the online
store and the API, in one process, because DuckDB has one writer process
(ARCHITECTURE.md, decisions 6 and 10).

Threads: the loader (``loader.pipeline.run``; its ``validate`` hook feeds each accepted event
to the stream attributes before the batch is committed), the API (uvicorn), the snapshot
publisher, the simulated visitors of ``--simulate``, and the main thread, which runs the refresh
loop (dbt's ``realtime`` models, or the replay of their SQL, then the batch sync into the
online store) and handles SIGTERM/SIGINT. A failing refresh is logged and retried on the next
wake-up; the API keeps serving the last good snapshot meanwhile (``/health`` says how old).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb

from loader.errors import ConfigError
from serving import memory, stream
from serving.batch import DUCKDB, ROOT, BatchSync, Dialect, builtin_groups
from serving.context import Pseudonyms, load_salt
from serving.definitions import Group, load_yaml
from serving.event_logs import EventLogs
from serving.memory import GcPauses, duckdb_mb, rss_mb, settle, trim
from serving.plan import (
    Plan,
    PlanFailed,
    PlanRecorder,
    changes_schema,
    fingerprint,
    upstream,
)
from serving.replica import share_definitions
from serving.service import Api, new_registry
from serving.snapshot import MAX_SHARE, Snapshot
from serving.stores import open_store

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

log = logging.getLogger("persona.serving.live")

DEFINITIONS = Path(__file__).with_name("attributes.yml")
# The models the batch sync and the interventions read (serving/batch.py, serving/interventions):
# each refresh replays them and what they read; the others (anomalies, reporting aggregates,
# audiences) wait for a refresh of every model, at least every --all-models-seconds.
SERVED_MODELS = (
    "profiles", "segment_membership", "identity_map", "interactions", "segment_changes",
)  # fmt: skip
# How often the refresh loop wakes up without events (to see the hour turn, retention due).
IDLE_REFRESH_SECONDS = 60.0
# How often the refresh loop samples where the memory goes (/health's ``memory``).
MEMORY_SAMPLE_SECONDS = 10.0
# Retention (privacy.retention): first an hour after start, then daily.
RETENTION_FIRST_SECONDS = 3600.0
RETENTION_EVERY_SECONDS = 86400.0
# DuckDB checkpoints by itself once its WAL passes 16 MB, but only when no other transaction
# runs, which in a live process (the loader, a refresh, the snapshot's copy) is almost never:
# the WAL and the un-checkpointed rows DuckDB keeps in memory grew without end (measured:
# ``in_memory_table`` 700-790 MB after a minute at 500 events/s). After a refresh whose WAL has
# passed this, the refresh loop checkpoints itself, and tries again after the next refresh
# when another transaction ran (a FORCE CHECKPOINT, which waits for them, stalled the loop).
CHECKPOINT_WAL_BYTES = 32 * 2**20


@dataclass
class Settings:
    source: str
    listen: str
    warehouse: str
    token: str
    online_store: str = "memory"
    definitions: Path | None = DEFINITIONS
    refresh_seconds: float = 0.5  # at least this long between the starts of two refreshes
    dbt_seconds: float = 600.0  # dbt itself (not the replayed plan) at least this often; 0: once
    # every model at least this often; the refreshes between replay only what is served
    all_models_seconds: float = 30.0
    refresh: bool = True
    state_dir: Path = Path(".persona/serving")
    spool: str = ".persona/spool"
    schema: str = "derived"
    batch_seconds: float = 0.1
    lifetime_window_seconds: float = stream.LIFETIME_WINDOW_SECONDS
    dbt_vars: dict[str, Any] = field(default_factory=dict)
    snapshot: Path | None = None  # the read-only copy for other processes; None: none
    snapshot_seconds: float = 30.0
    snapshot_share: float = MAX_SHARE  # of the time, the snapshot's copies take at most
    browser_origins: tuple[str, ...] = ()  # pages that may call /v1/decide from a browser
    simulate: float = 0.0  # synthetic visits a second posted to the collector (make live)
    memory_limit: str = "1GB"  # DuckDB's buffer pool in this process (checked: MEMORY_LIMIT)
    retention: Any = None  # privacy.retention rules applied daily; None: none
    target: str = "duckdb"  # the warehouse: duckdb (PERSONA_DUCKDB) or snowflake (SNOWFLAKE_*)
    sync_seconds: float = 30.0  # Snowflake: the serving tables synced this often
    interventions: Any = None  # serving.interventions.InterventionSettings (None: defaults)


MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def check_memory_limit(value: str) -> str:
    if not MEMORY_LIMIT.fullmatch(value.strip()):
        raise ConfigError(f"--memory-limit {value!r}: give a size such as 512MB or 2GB")
    return value.strip()


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def recent_events(con: Any, groups: list[Group], since_seconds: float,
                  columns: set[str] | None = None,
                  dialect: Dialect = DUCKDB) -> Iterator[Mapping[str, Any]]:  # fmt: skip
    """The events of the last ``since_seconds`` (by collector_tstamp) in ``atomic.events``
    that ``groups`` read, oldest first, with only the columns they need (or ``columns``):
    DuckDB's (a connection) or Snowflake's (a connector cursor, ``dialect=SNOWFLAKE``)."""
    from privacy.forget import quote

    p = dialect.param
    names = con.execute(
        "select column_name from information_schema.columns where lower(table_schema) = "
        f"{p} and lower(table_name) = {p} and table_catalog = current_database()",
        ["atomic", "events"],
    ).fetchall()
    existing = {dialect.name_of(name): name for (name,) in names}
    if not existing:
        return
    cols = sorted((stream.columns(groups) if columns is None else columns) & set(existing))
    since = datetime.fromtimestamp(time.time() - since_seconds, UTC).replace(tzinfo=None)
    tstamp = quote(existing["collector_tstamp"])
    yield from dialect.dicts(con, (
        f"select {', '.join(quote(existing[c]) for c in cols)} from atomic.events "
        f"where {tstamp} >= {p} order by {tstamp}"
    ), [since])  # fmt: skip


class Freshness:
    """How the batch attributes keep up: each refresh (or sync) counted, the last one's error
    kept, and what ``/health`` reports of it. A failure is logged; the store keeps the last
    good values meanwhile."""

    what = "refresh"

    def __init__(self, sync: BatchSync) -> None:
        self.sync = sync
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.last_seconds: float | None = None
        self.failures = 0
        self.cycles = 0

    def _failed(self, exc: BaseException) -> bool:
        self.failures += 1
        self.last_error = str(exc)[:2000]
        log.error("%s failed (%s); serving the last good snapshot", self.what, self.last_error)
        return False

    def _succeeded(self, started: float) -> None:
        self.cycles += 1
        self.last_ok = time.time()
        self.last_error = None
        self.last_seconds = time.perf_counter() - started

    def status(self) -> dict[str, Any]:
        age = None if self.last_ok is None else round(time.time() - self.last_ok, 3)
        seconds = None if self.last_seconds is None else round(self.last_seconds, 3)
        return {"refreshes": self.cycles, "refresh_failures": self.failures,
                "last_refresh_seconds": seconds, "last_refresh_age_s": age,
                "last_refresh_error": self.last_error, "batch_as_of": self.sync.as_of}  # fmt: skip


class Refresher(Freshness):
    """dbt's realtime models, in this process, then the batch sync.

    dbt runs the first refresh, then one every ``dbt_seconds``; the refreshes in between replay
    the SQL dbt's last run executed (serving/plan.py), about four times faster."""

    def __init__(self, settings: Settings, sync: BatchSync, con: duckdb.DuckDBPyConnection):
        super().__init__(sync)
        self.settings, self.con = settings, con
        self.work = settings.state_dir / "dbt"
        self.runner: Any = None
        self.recorder = PlanRecorder()
        self.plan: Plan | None = None
        self.views_built = False
        self.last_dbt = 0.0
        self.last_all = 0.0  # the last refresh of every model (dbt, or a whole replay)
        self.serving: set[str] = set()
        self.replays = 0
        self.served_replays = 0  # of which only the served models and what they read
        self.dbt_runs = 0
        self.last_parts: dict[str, float] = {}  # the last refresh's seconds, by part

    def _common(self) -> list[str]:
        import json

        extra = ["--vars", json.dumps(self.settings.dbt_vars)] if self.settings.dbt_vars else []
        return [*extra, "--project-dir", str(ROOT), "--profiles-dir", str(self.work),
                "--target-path", str(self.work / "target"), "--log-path",
                str(self.work / "logs"), "--quiet"]  # fmt: skip

    def _env(self) -> dict[str, str]:
        return {"PERSONA_DUCKDB": self.settings.warehouse, "PERSONA_TARGET": "duckdb",
                "PERSONA_SCHEMA": self.settings.schema}  # fmt: skip

    def _dbt(self, full: bool = False) -> None:
        """One dbt build of the realtime models, recording the plan replayed after it (the first
        run also builds the views and seeds, which later runs leave alone)."""
        from dbt.cli.main import dbtRunner

        from recs.dbt_invoke import environment, failures

        with environment(self._env()):
            if self.runner is None:
                self.work.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / "profiles.example.yml", self.work / "profiles.yml")
                parsed = dbtRunner().invoke(["parse", *self._common()])
                if not parsed.success:
                    raise RuntimeError(f"dbt parse failed: {failures(parsed)}")
                manifest = cast("Manifest", parsed.result)  # dbt types result as any artifact
                self.runner = dbtRunner(manifest=manifest, callbacks=[self.recorder])
            tests = ["--exclude-resource-type", "test", "unit_test"]
            if self.views_built:  # the realtime selector, less the views and seeds built once
                select = ["--select", "fqn:*", "--exclude", "tag:retrain",
                          "config.materialized:view", "resource_type:seed"]  # fmt: skip
            else:
                select = ["--selector", "realtime"]
            self.recorder.take()
            fingerprint_before = fingerprint(self.con.cursor())
            relations_before = self._relations()
            rebuild = ["--full-refresh"] if full else []
            result = self.runner.invoke(["build", *select, *tests, *rebuild, *self._common()])
            steps = self.recorder.take()
        self.dbt_runs += 1
        self.last_dbt = self.last_all = time.monotonic()
        if not result.success:
            self.plan = None
            raise RuntimeError(f"dbt build failed: {failures(result)}")
        self.views_built = True
        # the plan leaves out what later runs leave alone (views; seeds are not recorded), and
        # is good only if the events' columns did not move while dbt ran, and dbt created no
        # relation (a first build's SQL creates tables the next run would refresh instead)
        nodes = self.runner.manifest.nodes
        views = {uid for uid, node in nodes.items() if node.config.materialized == "view"}
        # what the online store reads, and everything under it (with the run's hooks)
        self.serving = upstream(nodes, {f"model.persona.{m}" for m in SERVED_MODELS}) | {
            step.node for step in steps if step.node.startswith("operation.")}  # fmt: skip
        steady = self._relations() == relations_before and not full and not changes_schema(steps)
        if steady and fingerprint(self.con.cursor()) == fingerprint_before:
            self.plan = Plan([s for s in steps if s.node not in views], fingerprint_before)
        else:
            self.plan = None

    def _relations(self) -> set[tuple[str, str]]:
        # this database's only: the snapshot publisher attaches its copy while it writes it
        sql = ("select table_schema, table_name from information_schema.tables "
               "where table_catalog = current_database()")  # fmt: skip
        rows = self.con.cursor().execute(sql).fetchall()
        return {(schema, name) for schema, name in rows}

    def _replayable(self) -> bool:
        if self.plan is None:
            return False
        every = self.settings.dbt_seconds
        if every > 0 and time.monotonic() - self.last_dbt >= every:
            return False
        return fingerprint(self.con.cursor()) == self.plan.fingerprint

    def refresh(self, full: bool = False) -> bool:
        """``full``: dbt rebuilds every realtime model from what the warehouse holds (after
        rows were deleted underneath them: retention)."""
        started = time.perf_counter()
        mode = "dbt --full-refresh" if full else "dbt"
        parts: dict[str, float] = {}
        try:
            if full:
                self._dbt(full=True)
            elif self._replayable():
                assert self.plan is not None
                all_due = time.monotonic() - self.last_all >= self.settings.all_models_seconds
                only = None if all_due else self.serving
                try:
                    self.plan.replay(self.con.cursor, only)
                    self.replays += 1
                    mode = "replay" if only is None else "replay, served models"
                    if only is None:
                        self.last_all = time.monotonic()
                    else:
                        self.served_replays += 1
                except PlanFailed as exc:
                    log.warning("replaying the refresh plan failed (%s); running dbt", exc)
                    self.plan = None
                    self._dbt()
            else:
                self._dbt()
            parts["models"] = time.perf_counter() - started
            synced = self.sync.sync(self.con.cursor())
        except Exception as exc:
            return self._failed(exc)
        self._succeeded(started)
        assert self.last_seconds is not None
        # where a cycle goes (/health): the models (dbt or the replay), the sync's queries and
        # writes, and what listens to the sync (interventions)
        parts["sync"] = synced.seconds
        parts["listeners"] = max(0.0, self.last_seconds - parts["models"] - synced.seconds)
        self.last_parts = {k: round(v, 3) for k, v in parts.items()}
        log.info("refreshed (%s) in %.2f s (models %.2f, sync %.2f, listeners %.2f); "
                 "%d keys synced", mode, self.last_seconds, parts["models"], parts["sync"],
                 parts["listeners"], synced.keys)  # fmt: skip
        return True

    def status(self) -> dict[str, Any]:
        return {**super().status(), "refresh_replays": self.replays,
                "refresh_dbt_runs": self.dbt_runs,
                "refresh_served_only": self.served_replays,
                "last_refresh_parts": self.last_parts}  # fmt: skip


class SnapshotPublisher:
    """Publishes the snapshot from its own thread, after a refresh it lacks, when due: a copy
    of the whole warehouse takes seconds, which the refresh loop must not wait for."""

    def __init__(self, snapshot: Snapshot, con: duckdb.DuckDBPyConnection,
                 cycles: Callable[[], int]) -> None:  # fmt: skip
        self.snapshot, self.con, self.cycles = snapshot, con, cycles
        self.awake = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="snapshot", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        self.awake.set()

    def run(self) -> None:
        published = -1  # the refresh the snapshot holds: none yet (the first: at start)
        while not self.stopped.is_set():
            cycles = self.cycles()
            if cycles > published and self.snapshot.due():
                published = cycles
                self.snapshot.publish(self.con)
                continue
            wait = (
                None
                if self.snapshot.published_at is None
                else max(
                    0.05, self.snapshot.interval() - (time.time() - self.snapshot.published_at)
                )
            )
            self.awake.wait(wait if cycles > published else None)  # fmt: skip
            self.awake.clear()

    def stop(self) -> None:
        self.stopped.set()
        self.awake.set()
        self.thread.join(timeout=120)


class Warehouse:
    """What differs between the warehouses a live process serves: where accepted events go
    (``sink``), where recent events are read back (``recent_events``), and what keeps the
    batch attributes fresh (``run``, on the main thread until the process stops). Everything
    else (the store, the definitions, the stream attributes, the loader thread, the API) is
    the same for every warehouse and lives in ``Live.run``."""

    dialect: Dialect = DUCKDB
    schema: str = "derived"
    required: frozenset[str] = frozenset()  # serving tables whose absence fails a sync
    freshness: Freshness | None = None
    forgetter: Any = None  # privacy.live.LiveForget where forget requests run in this process

    def recent_events(self, groups: list[Group], since_seconds: float,
                      columns: set[str] | None = None) -> Iterator[Mapping[str, Any]]:  # fmt: skip
        raise NotImplementedError

    def cursor(self) -> Any:
        """For the main thread's queries (the batch sync, the simulator's known visitors)."""
        raise NotImplementedError

    def sink(self, source: Any) -> Any:
        """Where ``source``'s accepted events go (after the stream attributes saw them)."""
        raise NotImplementedError

    def first_sync(self, sync: BatchSync) -> None:
        """The batch attributes at start, before anything listens to the sync's changes."""
        synced = sync.sync(self.cursor())
        log.info("batch attributes synced: %d keys", synced.keys)

    def attach(self, live: Live, registry: Any, engine: stream.StreamEngine, store: Any,
               sync: BatchSync) -> None:  # fmt: skip
        """What this warehouse adds once the stream attributes and the sync exist."""

    def status(self) -> dict[str, Any]:
        return {} if self.freshness is None else self.freshness.status()

    def run(self, live: Live) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Background work of this warehouse's own, stopped before the API is."""

    def close(self) -> None:
        """After the loader's last commit."""


class DuckDBWarehouse(Warehouse):
    """The embedded default: this process holds the DuckDB file, dbt refreshes its realtime
    models in-process (``Refresher``), the snapshot publisher copies it for other processes'
    SQL, forget requests and the daily retention run here (ARCHITECTURE.md, decision 10)."""

    def __init__(self, settings: Settings) -> None:
        from loader.sinks.duckdb import DuckDBSink

        s = self.settings = settings
        self.schema = s.schema
        self._sink = DuckDBSink(s.warehouse)  # in this process: dbt and the API share its database
        self.con = duckdb.connect(s.warehouse)
        # DuckDB's buffer pool takes up to 80% of the machine by default, and a live warehouse
        # only grows: bounded, the process's memory stays flat (DuckDB spills what is bigger)
        self.con.execute(f"SET memory_limit = '{s.memory_limit}'")
        self.snapshot: Snapshot | None = None
        if s.snapshot is not None:
            self.snapshot = Snapshot(s.snapshot, s.snapshot_seconds, s.snapshot_share)
        self.publisher: SnapshotPublisher | None = None
        self.refresher: Refresher | None = None
        self.wal = Path(f"{s.warehouse}.wal")
        self.checkpoints = 0
        self.checkpoints_deferred = 0  # another transaction ran: tried after the next refresh
        self.checkpoint_seconds: float | None = None

    def recent_events(self, groups: list[Group], since_seconds: float,
                      columns: set[str] | None = None) -> Iterator[Mapping[str, Any]]:  # fmt: skip
        return recent_events(self.con.cursor(), groups, since_seconds, columns)

    def cursor(self) -> Any:
        return self.con.cursor()

    def sink(self, source: Any) -> Any:
        return self._sink

    def attach(self, live: Live, registry: Any, engine: stream.StreamEngine, store: Any,
               sync: BatchSync) -> None:  # fmt: skip
        from privacy.live import LiveForget
        from serving.interventions import attach

        s, con, snapshot = self.settings, self.con, self.snapshot
        self.freshness = self.refresher = Refresher(s, sync, con)
        # interventions (serving/interventions): rules fired on the stream's and the sync's
        # changes, recorded in the warehouse
        live.interventions = attach(s.interventions, s.state_dir, registry, engine, store, con,
                                    sync)  # fmt: skip
        self.forgetter = LiveForget(
            s.warehouse, con, store, engine,
            after=None if snapshot is None else lambda: snapshot.publish(con),
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {**super().status(), **(self.snapshot.status() if self.snapshot else {}),
                "checkpoints": self.checkpoints, "gc_frozen": memory.last_full.get("frozen", 0),
                "checkpoints_deferred": self.checkpoints_deferred,
                "last_checkpoint_seconds": self.checkpoint_seconds}  # fmt: skip

    def _checkpoint_if_due(self) -> None:
        try:
            due = self.wal.stat().st_size >= CHECKPOINT_WAL_BYTES
        except FileNotFoundError:  # checkpointed since: no WAL
            return
        if not due:
            return
        started = time.perf_counter()
        cursor = self.con.cursor()
        try:
            cursor.execute("checkpoint")
        except duckdb.Error as exc:  # another transaction ran: tried again after the next refresh
            self.checkpoints_deferred += 1
            log.debug("checkpoint deferred: %s", exc)
            return
        finally:
            cursor.close()
        self.checkpoints += 1
        self.checkpoint_seconds = round(time.perf_counter() - started, 3)
        log.info("checkpointed the warehouse in %.2f s", self.checkpoint_seconds)

    def run(self, live: Live) -> None:
        """The refresh loop: dbt (or its replay) when batches landed, at most every
        ``refresh_seconds``, and when the hour turns; retention when due."""
        s, refresher, forgetter = self.settings, self.refresher, self.forgetter
        assert refresher is not None
        if self.snapshot is not None:  # SQL on what is served, from the start
            self.publisher = SnapshotPublisher(self.snapshot, self.con, lambda: refresher.cycles)
            self.publisher.start()
        last_refresh = time.monotonic()
        refreshed_hour = int(time.time() // 3600)
        retention_due = time.monotonic() + RETENTION_FIRST_SECONDS
        while True:
            # awake when a batch lands; without events, every so often: the profiles'
            # windows move with the clock
            live.loaded.wait(IDLE_REFRESH_SECONDS)
            if live.stop_event.is_set():
                break
            # without events, the models change only with the clock's hour (anomalies'
            # window) and day (the profiles' windows): a refresh when the hour turns
            idle = int(time.time() // 3600) != refreshed_hour
            if s.refresh and (live.loaded.is_set() or idle):
                spacing = s.refresh_seconds - (time.monotonic() - last_refresh)
                if spacing > 0 and live.stop_event.wait(spacing):
                    break
                live.loaded.clear()  # before the refresh: a batch landing during it counts
                last_refresh = time.monotonic()
                refreshed_hour = int(time.time() // 3600)
                ran = refresher.dbt_runs
                with forgetter.exclusive:  # a forget request waits for the refresh
                    refresher.refresh()
                if refresher.dbt_runs != ran:  # dbt ran: its garbage out, its project frozen
                    settle(0)
                self._checkpoint_if_due()
                live.sample_memory(self.con)
            elif not s.refresh:
                live.loaded.clear()
            if s.retention and time.monotonic() >= retention_due:
                retention_due = time.monotonic() + RETENTION_EVERY_SECONDS
                live._retention(forgetter, refresher)
            if self.publisher is not None:
                self.publisher.wake()

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()

    def close(self) -> None:
        self._sink.close()
        self.con.close()


def open_warehouse(settings: Settings) -> Warehouse:
    """The warehouse ``settings.target`` names."""
    if settings.target == "snowflake":
        from serving.snowflake import SnowflakeWarehouse

        return SnowflakeWarehouse(settings)
    if settings.target != "duckdb":
        raise ConfigError(f"--warehouse {settings.target!r}: duckdb or snowflake")
    return DuckDBWarehouse(settings)


class Live:
    def __init__(self, settings: Settings, warehouse: Warehouse | None = None) -> None:
        self.settings = settings
        self.warehouse = warehouse  # None: open_warehouse(settings) when it runs
        self.stop_event = threading.Event()
        self.loaded = threading.Event()  # a batch was committed since the last refresh
        self.errors: list[BaseException] = []
        self.interventions: Any = None  # serving.interventions.Interventions, where they run
        self.memory: dict[str, Any] = {}  # the last sample (/health)
        self._sampled = 0.0
        self.engine: stream.StreamEngine | None = None
        self.gc = GcPauses()

    def sample_memory(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """After a refresh (or a sync): what survived out of the collector's walk and the
        allocator's free pages back to the system (serving/memory.py: ``settle``, ``trim``),
        and, every ``MEMORY_SAMPLE_SECONDS``, where the memory goes
        (``con``: the DuckDB this process holds, whose share is reported apart)."""
        settle()
        trimmed = trim()
        if time.monotonic() - self._sampled < MEMORY_SAMPLE_SECONDS:
            return
        self._sampled = time.monotonic()
        sample: dict[str, Any] = {"rss_mb": round(rss_mb(), 1), "trimmed": trimmed}
        if self.engine is not None:
            sample["stream_keys"] = len(self.engine.state)
        if con is not None:
            # never fails the loop: the next sample will say
            with contextlib.suppress(duckdb.Error):
                held = duckdb_mb(con.cursor())
                sample["duckdb_mb"] = held.pop("total")
                sample["duckdb_parts_mb"] = held
        self.memory = sample

    def stop(self) -> None:
        self.stop_event.set()
        self.loaded.set()  # wakes the refresh loop

    def run(self) -> int:
        from loader import pipeline
        from loader.privacy import Privacy
        from loader.schema_policy import SchemaPolicy
        from loader.settings import Settings as LoaderSettings
        from loader.uris import open_source
        from loader.validate import Validate

        s = self.settings
        host, port = parse_listen(s.listen)
        wh = self.warehouse = self.warehouse or open_warehouse(s)
        store = open_store(s.online_store)
        registry = new_registry(s.state_dir / "registry.json")
        if s.definitions is not None:
            groups, services = load_yaml(s.definitions)
            registry.load(groups, services, source=str(s.definitions))
        registry.load_published()
        engine = self.engine = stream.StreamEngine(store, s.lifetime_window_seconds)
        engine.set_groups(registry.stream_groups())

        def history(group: Group) -> Iterator[Mapping[str, Any]]:
            return wh.recent_events([group], stream.window(group, s.lifetime_window_seconds))

        def on_definition(old: Group | None, new: Group | None) -> None:
            if new is None:
                if old is not None:
                    engine.remove_group(old.full_name)
            elif new.is_stream:
                engine.add_group(new, history)

        registry.listeners.append(on_definition)
        event_logs = EventLogs(store, s.state_dir / "event_logs.json",
                               lambda cols, secs: wh.recent_events([], secs, cols))  # fmt: skip
        event_logs.load()
        log.info("event logs rebuilt from the warehouse: %d entries", event_logs.rebuild())
        streamed = registry.stream_groups()
        window = max((stream.window(g, s.lifetime_window_seconds) for g in streamed), default=0)
        started = time.perf_counter()
        keys = engine.rebuild(wh.recent_events(streamed, window))
        log.info("stream attributes rebuilt from the warehouse: %d keys, %d events, %.2f s",
                 keys, engine.events, time.perf_counter() - started)  # fmt: skip

        sync = BatchSync(store, wh.schema, wh.dialect, wh.required)
        served_profiles = False

        def first_sync_listener(_con: Any, _result: Any) -> None:
            nonlocal served_profiles  # the profiles group, once the first sync typed it
            if not served_profiles and sync.profile_fields:
                registry.add_builtin(builtin_groups(sync.profile_fields)[:1])
                share_definitions(registry, store)
                served_profiles = True

        sync.listeners.append(first_sync_listener)
        wh.first_sync(sync)  # a warehouse `make demo` built serves at once
        wh.attach(self, registry, engine, store, sync)
        # the definitions, for API replicas over the same store (serving/replica.py)
        share_definitions(registry, store)
        registry.changed.append(lambda: share_definitions(registry, store))
        forgetter = wh.forgetter
        api = Api(registry, store, engine)
        api.event_logs, api.pseudonyms = event_logs, Pseudonyms(load_salt(s.state_dir))
        api.refresh_status = lambda: {
            **wh.status(),
            **(self.interventions.status() if self.interventions else {}),
            "memory": {**self.memory, "gc": {**self.gc.status(), "last_full": memory.last_full}},
        }
        loading = LoaderSettings(source=s.source, spool=str(s.spool))
        privacy = Privacy.from_env(loading.pii_fields, loading.anonymize_ip_octets)
        source = open_source(s.source, loading, privacy=privacy)
        sink = wh.sink(source)
        validate = Validate(None if source.protects_privacy else privacy,
                            SchemaPolicy(known=sink.entity_columns()),
                            suppression=forgetter.step if forgetter else None)  # fmt: skip

        consumers = (("stream attributes", engine.observe), ("event logs", event_logs.observe))

        def accepted(item: Any) -> Any:
            """The loader's validate hook: each accepted event to the stream attributes and
            the event logs, before its batch commits. Never raises: a bug here must not stop
            the loader (the event is in the warehouse all the same), so failures are logged."""
            item = validate(item)
            try:  # a chunk's rows, converted once for both
                events = stream.item_events(item)
            except Exception:
                log.exception("an accepted item could not be read as events")
                return item
            for what, observe in consumers if events else ():
                try:
                    observe(events)
                except Exception:
                    log.exception("%s: an event could not be taken", what)
            return item

        def committed(_: Any) -> None:
            engine.committed()
            event_logs.committed()
            self.loaded.set()

        def load() -> None:
            try:
                pipeline.run(source, sink, batch_seconds=s.batch_seconds, on_commit=committed,
                             validate=accepted,
                             between=forgetter.between if forgetter else None)  # fmt: skip
            except BaseException as exc:
                log.exception("the loader stopped")
                self.errors.append(exc)
            finally:
                self.stop()

        server = self._server(api, host, port, forgetter)
        loader = threading.Thread(target=load, name="loader", daemon=True)
        http = threading.Thread(target=server.run, name="api", daemon=True)
        if threading.current_thread() is threading.main_thread():  # (a test runs it on another)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop())
        self.gc.install()
        settle(0)  # what startup built (the rebuilt state, dbt's project) leaves the scans
        loader.start()
        http.start()
        log.info("serving on http://%s:%d; collector on %s", host, port, s.source)
        simulator = self._simulator(wh)
        try:
            wh.run(self)
        finally:
            self.gc.uninstall()
            gc.unfreeze()
            if simulator is not None:
                simulator.stop()
            wh.stop()
            if self.interventions is not None:
                self.interventions.hub.close()  # SSE responses end before the server stops
            server.should_exit = True
            stop = getattr(source, "stop", None)
            if stop is not None:
                stop()
            loader.join(timeout=60)
            http.join(timeout=10)
            if self.interventions is not None:
                self.interventions.deliverer.stop()
            if hasattr(source, "close"):
                source.close()
            wh.close()
            store.close()
        if (failure := getattr(source, "failure", None)) is not None:
            raise failure
        if self.errors:
            raise self.errors[0]
        return 0

    def _retention(self, forgetter: Any, refresher: Refresher) -> None:
        """The daily retention step: old rows deleted with the loader and the refresh paused
        (as a forget), then the realtime models rebuilt from what remains."""
        from privacy import retention

        rules = self.settings.retention
        try:
            deleted = forgetter.run_alone(lambda con: retention.apply(con, rules))
        except Exception:
            log.exception("retention failed; retried tomorrow")
            return
        if any(deleted.values()):
            log.info("retention deleted %s; rebuilding the realtime models",
                     {t: n for t, n in deleted.items() if n})  # fmt: skip
            with forgetter.exclusive:
                refresher.refresh(full=True)

    def _simulator(self, wh: Warehouse) -> Any:
        """``--simulate N``: N synthetic visits a second to this process's own collector."""
        from serving.visitors import Simulator, known_visitors

        s = self.settings
        if s.simulate <= 0:
            return None
        simulator = Simulator(s.source, s.simulate, known_visitors(wh.cursor(), wh.dialect.param))
        simulator.start()
        log.info("simulating %.1f visits a second (%d known visitors may return)",
                 s.simulate, len(simulator.known))  # fmt: skip
        return simulator

    def _server(self, api: Api, host: str, port: int, forget: Any = None) -> Any:
        import uvicorn

        from serving.http import build_app

        app = build_app(api, self.settings.token, browser_origins=self.settings.browser_origins,
                        interventions=self.interventions, forget=forget)  # fmt: skip
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")  # fmt: skip
        return uvicorn.Server(config)

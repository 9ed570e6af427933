"""The live process: collector → loader → DuckDB, a refresh loop (dbt in-process), the online
store and the API, in one process, because DuckDB has one writer process
(ARCHITECTURE.md, decisions 6 and 10).

Threads: the loader (``loader.pipeline.run``; its ``validate`` hook feeds each accepted event
to the stream attributes before the batch is committed), the API (uvicorn), and the main
thread, which runs the refresh loop (dbt's ``realtime`` models, then the batch sync into the
online store) and handles SIGTERM/SIGINT. A failing refresh is logged and retried on the next
interval; the API keeps serving the last good snapshot meanwhile (``/health`` says how old).
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from loader.errors import ConfigError
from serving import stream
from serving.batch import ROOT, BatchSync, builtin_groups
from serving.definitions import Group, load_yaml
from serving.service import Api, new_registry
from serving.snapshot import Snapshot
from serving.stores import open_store

log = logging.getLogger("persona.serving.live")

DEFINITIONS = Path(__file__).with_name("attributes.yml")


@dataclass
class Settings:
    source: str
    listen: str
    warehouse: str
    token: str
    online_store: str = "memory"
    definitions: Path | None = DEFINITIONS
    refresh_seconds: float = 5.0
    refresh: bool = True
    state_dir: Path = Path(".persona/serving")
    spool: str = ".persona/spool"
    schema: str = "derived"
    batch_seconds: float = 0.25
    lifetime_window_seconds: float = stream.LIFETIME_WINDOW_SECONDS
    dbt_vars: dict[str, Any] = field(default_factory=dict)
    snapshot: Path | None = None  # the read-only copy for other processes; None: none
    snapshot_seconds: float = 30.0
    browser_origins: tuple[str, ...] = ()  # pages that may call /v1/decide from a browser


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def recent_events(con: duckdb.DuckDBPyConnection, groups: list[Group],
                  since_seconds: float) -> Iterator[Mapping[str, Any]]:  # fmt: skip
    """The events of the last ``since_seconds`` (by collector_tstamp) that ``groups`` read,
    oldest first, with only the columns they need."""
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = 'atomic' and table_name = 'events'").fetchall()}  # fmt: skip
    if not existing:
        return
    cols = sorted(stream.columns(groups) & existing)
    since = datetime.fromtimestamp(time.time() - since_seconds, UTC).replace(tzinfo=None)
    reader = con.sql(
        f"select {', '.join(repr(c).replace(chr(39), chr(34)) for c in cols)} from atomic.events "
        f"where collector_tstamp >= ? order by collector_tstamp",
        params=[since],
    ).to_arrow_reader(10_000)
    for batch in reader:
        yield from batch.to_pylist()


class Refresher:
    """dbt's realtime models, in this process, then the batch sync."""

    def __init__(self, settings: Settings, sync: BatchSync, con: duckdb.DuckDBPyConnection):
        self.settings, self.sync, self.con = settings, sync, con
        self.work = settings.state_dir / "dbt"
        self.runner: Any = None
        self.views_built = False
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.cycles = 0

    def _common(self) -> list[str]:
        import json

        extra = ["--vars", json.dumps(self.settings.dbt_vars)] if self.settings.dbt_vars else []
        return [*extra, "--project-dir", str(ROOT), "--profiles-dir", str(self.work),
                "--target-path", str(self.work / "target"), "--log-path",
                str(self.work / "logs"), "--quiet"]  # fmt: skip

    def _env(self) -> dict[str, str]:
        return {"PERSONA_DUCKDB": self.settings.warehouse, "PERSONA_TARGET": "duckdb",
                "PERSONA_SCHEMA": self.settings.schema}  # fmt: skip

    def refresh(self) -> bool:
        from dbt.cli.main import dbtRunner

        from recs.dbt_invoke import environment, failures

        started = time.perf_counter()
        try:
            with environment(self._env()):
                if self.runner is None:
                    self.work.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / "profiles.example.yml", self.work / "profiles.yml")
                    parsed = dbtRunner().invoke(["parse", *self._common()])
                    if not parsed.success:
                        raise RuntimeError(f"dbt parse failed: {failures(parsed)}")
                    self.runner = dbtRunner(manifest=parsed.result)
                tests = ["--exclude-resource-type", "test", "unit_test"]
                if self.views_built:  # the realtime selector, less the views made once already
                    select = ["--select", "fqn:*", "--exclude", "tag:retrain",
                              "config.materialized:view"]  # fmt: skip
                else:
                    select = ["--selector", "realtime"]
                result = self.runner.invoke(["build", *select, *tests, *self._common()])
            if not result.success:
                raise RuntimeError(f"dbt build failed: {failures(result)}")
            self.views_built = True
            synced = self.sync.sync(self.con.cursor())
        except Exception as exc:
            self.failures += 1
            self.last_error = str(exc)[:2000]
            log.error("refresh failed (%s); serving the last good snapshot", self.last_error)
            return False
        self.cycles += 1
        self.last_ok = time.time()
        self.last_error = None
        log.info("refreshed in %.2f s; %d keys synced", time.perf_counter() - started,
                 synced.keys)  # fmt: skip
        return True

    def status(self) -> dict[str, Any]:
        age = None if self.last_ok is None else round(time.time() - self.last_ok, 3)
        return {"refreshes": self.cycles, "refresh_failures": self.failures,
                "last_refresh_age_s": age, "last_refresh_error": self.last_error,
                "batch_as_of": self.sync.as_of}  # fmt: skip


class Live:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.loaded = threading.Event()  # a batch was committed since the last refresh
        self.errors: list[BaseException] = []

    def run(self) -> int:
        from loader import pipeline
        from loader.privacy import Privacy
        from loader.schema_policy import SchemaPolicy
        from loader.settings import Settings as LoaderSettings
        from loader.sinks.duckdb import DuckDBSink
        from loader.uris import open_source
        from loader.validate import Validate

        s = self.settings
        host, port = parse_listen(s.listen)
        store = open_store(s.online_store)
        registry = new_registry(s.state_dir / "registry.json")
        if s.definitions is not None:
            groups, services = load_yaml(s.definitions)
            registry.load(groups, services, source=str(s.definitions))
        registry.load_published()
        engine = stream.StreamEngine(store)
        engine.set_groups(registry.stream_groups())

        sink = DuckDBSink(s.warehouse)  # in this process: dbt and the API share its database
        con = duckdb.connect(s.warehouse)

        def history(group: Group) -> Iterator[Mapping[str, Any]]:
            window = stream.window(group, s.lifetime_window_seconds)
            return recent_events(con.cursor(), [group], window)

        def on_definition(old: Group | None, new: Group | None) -> None:
            if new is None:
                if old is not None:
                    engine.remove_group(old.full_name)
            elif new.is_stream:
                engine.add_group(new, history)

        registry.listeners.append(on_definition)
        groups = registry.stream_groups()
        window = max((stream.window(g, s.lifetime_window_seconds) for g in groups), default=0)
        started = time.perf_counter()
        keys = engine.rebuild(recent_events(con.cursor(), groups, window))
        log.info("stream attributes rebuilt from the warehouse: %d keys, %d events, %.2f s",
                 keys, engine.events, time.perf_counter() - started)  # fmt: skip

        sync = BatchSync(store, s.schema)
        synced = sync.sync(con.cursor())  # a warehouse `make demo` built serves at once
        if sync.profile_fields:
            registry.add_builtin(builtin_groups(sync.profile_fields)[:1])
        log.info("batch attributes synced: %d keys", synced.keys)
        refresher = Refresher(s, sync, con)
        snapshot = None if s.snapshot is None else Snapshot(s.snapshot, s.snapshot_seconds)
        snapshotted = -1  # the refresh the snapshot holds: none yet

        from privacy.live import LiveForget

        forgetter = LiveForget(
            s.warehouse,
            con,
            store,
            engine,
            after=None if snapshot is None else lambda: snapshot.publish(con),
        )
        api = Api(registry, store, engine)
        api.refresh_status = lambda: {**refresher.status(),
                                      **(snapshot.status() if snapshot else {})}  # fmt: skip
        loading = LoaderSettings(source=s.source, spool=str(s.spool))
        privacy = Privacy.from_env(loading.pii_fields, loading.anonymize_ip_octets)
        source = open_source(s.source, loading, privacy=privacy)
        validate = Validate(None if source.protects_privacy else privacy,
                            SchemaPolicy(known=sink.entity_columns()),
                            suppression=forgetter.step)  # fmt: skip

        def accepted(item: Any) -> Any:
            return engine.observe_item(validate(item))

        def committed(_: Any) -> None:
            engine.committed()
            self.loaded.set()

        def load() -> None:
            try:
                pipeline.run(source, sink, batch_seconds=s.batch_seconds, on_commit=committed,
                             validate=accepted, between=forgetter.between)  # fmt: skip
            except BaseException as exc:
                log.exception("the loader stopped")
                self.errors.append(exc)
            finally:
                self.stop_event.set()

        server = self._server(api, host, port, forgetter)
        loader = threading.Thread(target=load, name="loader", daemon=True)
        http = threading.Thread(target=server.run, name="api", daemon=True)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop_event.set())
        loader.start()
        http.start()
        log.info("serving on http://%s:%d; collector on %s", host, port, s.source)
        if snapshot is not None:  # SQL on what is served, from the start (the API serves already)
            snapshotted = refresher.cycles
            snapshot.publish(con)
        try:
            while not self.stop_event.wait(s.refresh_seconds):
                if s.refresh and self.loaded.is_set():
                    self.loaded.clear()
                    with forgetter.exclusive:  # a forget request waits for the refresh
                        refresher.refresh()
                # a refresh the snapshot lacks: publish now, or at a later wake-up when due
                if snapshot is not None and refresher.cycles > snapshotted and snapshot.due():
                    snapshotted = refresher.cycles
                    snapshot.publish(con)
        finally:
            server.should_exit = True
            stop = getattr(source, "stop", None)
            if stop is not None:
                stop()
            loader.join(timeout=60)
            http.join(timeout=10)
            if hasattr(source, "close"):
                source.close()
            sink.close()
            con.close()
            store.close()
        if (failure := getattr(source, "failure", None)) is not None:
            raise failure
        if self.errors:
            raise self.errors[0]
        return 0

    def _server(self, api: Api, host: str, port: int, forget: Any = None) -> Any:
        import uvicorn

        from serving.http import build_app

        app = build_app(api, self.settings.token, browser_origins=self.settings.browser_origins,
                        forget=forget)  # fmt: skip
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")  # fmt: skip
        return uvicorn.Server(config)

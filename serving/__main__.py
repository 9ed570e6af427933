"""``python -m serving``: the live process (``persona serve`` runs the same).

python -m serving --source http://127.0.0.1:9090 --listen 127.0.0.1:8080

The API's bearer token comes from PERSONA_API_TOKEN (the Signals SDK's ``sandbox_token``), the
warehouse from PERSONA_DUCKDB (warehouse.duckdb by default).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loader.errors import PersonaError
from loader.settings import SOURCES_HELP


def parser(prog: str = "python -m serving") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="One process: the collector (or any loader source) → DuckDB, a refresh "
        "loop (dbt's realtime models), the online store and the decision API, Signals-"
        "compatible; or the same over Snowflake (--warehouse snowflake). Token from "
        "PERSONA_API_TOKEN, warehouse from PERSONA_DUCKDB.",
    )
    p.add_argument("--source", help=f"where events come from (not with --replica): {SOURCES_HELP}")
    p.add_argument("--listen", required=True, help="HOST:PORT of the API")
    p.add_argument(
        "--warehouse", choices=("duckdb", "snowflake"), default=None,
        help="duckdb (PERSONA_DUCKDB, the default) or snowflake (SNOWFLAKE_* variables: its "
        "dynamic tables refresh themselves, the serving tables are synced); default: "
        "PERSONA_TARGET, as dbt's profile (docs/serving.md, 'Against Snowflake')",
    )  # fmt: skip
    p.add_argument(
        "--sync-seconds", type=float, default=30.0,
        help="snowflake: sync the serving tables' changed rows into the store this often (30)",
    )  # fmt: skip
    p.add_argument(
        "--online-store", default="memory",
        help="memory (in this process, the default) or redis://HOST:PORT[/DB] (replicas share it)",
    )  # fmt: skip
    p.add_argument(
        "--replica", action="store_true",
        help="only the API, over the --online-store redis:// a live process fills: run as many "
        "as the traffic needs; definitions are the live process's (publish there)",
    )  # fmt: skip
    p.add_argument(
        "--definitions", default=str(Path(__file__).with_name("attributes.yml")),
        help="YAML of stream attribute groups and services (serving/attributes.yml); '' for none",
    )  # fmt: skip
    p.add_argument(
        "--refresh-seconds", type=float, default=0.5,
        help="refresh when events arrived, at most once per this many seconds (0.5); each refresh "
        "replays the SQL of dbt's last run of the realtime models",
    )  # fmt: skip
    p.add_argument(
        "--all-models-seconds", type=float, default=30.0,
        help="replay every realtime model at least this often (30); the refreshes between "
        "replay only the models the API serves and what they read (anomalies, reporting "
        "aggregates and segment history wait)",
    )  # fmt: skip
    p.add_argument(
        "--dbt-seconds", type=float, default=600.0,
        help="run dbt itself (which plans the replayed SQL anew) at least this often (600); "
        "0: only at start and when the events gain a column",
    )  # fmt: skip
    p.add_argument("--no-refresh", action="store_true", help="serve without running dbt")
    p.add_argument("--state-dir", default=".persona/serving",
                   help="published definitions, dbt's files (.persona/serving)")  # fmt: skip
    p.add_argument("--spool", default=".persona/spool",
                   help="the collector's durable spool (.persona/spool)")  # fmt: skip
    p.add_argument(
        "--snapshot", default=None,
        help="where to publish the read-only snapshot for other processes' SQL "
        "(PERSONA_DUCKDB with .snapshot.duckdb: warehouse.snapshot.duckdb)",
    )  # fmt: skip
    p.add_argument("--snapshot-seconds", type=float, default=30.0,
                   help="publish it after a refresh, at most this often (30)")  # fmt: skip
    p.add_argument(
        "--snapshot-share", type=float, default=0.05,
        help="the share of the time the snapshot's copies may take at most (0.05): after a "
        "copy of D seconds, the next waits at least D x (1/share - 1), so a copy slows few "
        "refreshes",
    )  # fmt: skip
    p.add_argument("--no-snapshot", action="store_true", help="publish no snapshot")
    p.add_argument(
        "--browser-origin", action="append", default=[], metavar="ORIGIN",
        help="a page origin (https://shop.example) whose scripts may call /v1/decide with the "
        "collector's cookie, for their own device (repeat it; '*' for any)",
    )  # fmt: skip
    p.add_argument(
        "--simulate", type=float, default=0.0, metavar="VISITS_PER_S",
        help="post this many synthetic shoppers' visits a second to the collector, stamped now, "
        "some of them returning visitors the warehouse knows (make live: 2)",
    )  # fmt: skip
    p.add_argument(
        "--retention", default=None, metavar="FILE",
        help="apply these retention rules (persona retention's YAML) an hour after start, then "
        "daily, and rebuild the realtime models; default: retention.yml when it exists",
    )  # fmt: skip
    p.add_argument("--no-retention", action="store_true", help="never delete old rows")
    p.add_argument(
        "--memory-limit",
        default="1GB",
        help="DuckDB's memory in this process (1GB); bigger queries spill to disk",
    )
    p.add_argument("--batch-seconds", type=float, default=0.1,
                   help="commit a batch to DuckDB after this long (0.1)")  # fmt: skip
    _intervention_flags(p)
    return p


def _intervention_flags(p: argparse.ArgumentParser) -> None:
    """docs/interventions.md"""
    from serving.interventions import RULES

    g = p.add_argument_group("interventions (docs/interventions.md)")
    g.add_argument(
        "--interventions",
        default=str(RULES),
        help="YAML of intervention rules (serving/interventions.yml); '' for none",
    )
    g.add_argument(
        "--webhook", action="append", default=[], metavar="[NAME=]URL",
        help="POST every fired intervention here, signed with PERSONA_WEBHOOK_SECRET_<NAME> "
        "or PERSONA_WEBHOOK_SECRET (repeat it)",
    )  # fmt: skip
    g.add_argument(
        "--webhook-allow", action="append", default=[], metavar="HOST[:PORT]",
        help="the hosts webhooks may go to (repeat it); default: those --webhook names",
    )  # fmt: skip
    g.add_argument("--webhook-attempts", type=int, default=8,
                   help="attempts before a delivery is dead-lettered (8)")  # fmt: skip
    g.add_argument("--webhook-timeout", type=float, default=5.0,
                   help="seconds an attempt may take (5)")  # fmt: skip
    g.add_argument(
        "--webhook-backoff",
        type=float,
        default=1.0,
        help="first retry's delay in seconds, doubled each time, with jitter (1)",
    )
    g.add_argument("--webhook-concurrency", type=int, default=4,
                   help="deliveries in flight per endpoint (4)")  # fmt: skip
    g.add_argument(
        "--sse-replay-seconds",
        type=float,
        default=300.0,
        help="how long Last-Event-ID can resume an SSE subscription (300)",
    )


def _interventions(args: argparse.Namespace) -> object:
    from serving.interventions import InterventionSettings
    from serving.interventions.webhooks import parse_endpoints

    endpoints = parse_endpoints(
        args.webhook, args.webhook_allow, concurrency=args.webhook_concurrency,
        timeout=args.webhook_timeout, attempts=args.webhook_attempts,
        backoff=args.webhook_backoff,
    )  # fmt: skip
    return InterventionSettings(Path(args.interventions) if args.interventions else None,
                                tuple(endpoints), args.sse_replay_seconds)  # fmt: skip


def main(argv: Sequence[str] | None = None, prog: str = "python -m serving") -> int:
    from loader import logs
    from loader.errors import ConfigError
    from serving.live import Live, Settings, check_memory_limit, parse_listen
    from serving.snapshot import snapshot_path

    args = parser(prog).parse_args(argv)
    logs.configure("text")
    try:
        host, port = parse_listen(args.listen)
        token = os.environ.get("PERSONA_API_TOKEN", "")
        if not token:
            if not _loopback(host):
                raise ConfigError(
                    f"--listen {args.listen} is reachable from other machines: set "
                    "PERSONA_API_TOKEN to a long random secret"
                )
            token = secrets.token_urlsafe(24)
            print(f"PERSONA_API_TOKEN is not set; this run's token: {token}", file=sys.stderr)
        if args.replica:
            return _replica(args, token, host, port)
        if not args.source:
            raise ConfigError("--source is required (or --replica for an API replica)")
        if args.simulate > 0 and not args.source.startswith(("http://", "https://")):
            raise ConfigError(
                f"--simulate posts to a collector: --source {args.source!r} is not one "
                "(give --source http://127.0.0.1:9090)"
            )
        target = args.warehouse or os.environ.get("PERSONA_TARGET", "duckdb").lower()
        if target not in ("duckdb", "snowflake"):
            raise ConfigError(f"PERSONA_TARGET={target!r}: duckdb or snowflake")
        if args.sync_seconds <= 0:
            raise ConfigError(f"--sync-seconds {args.sync_seconds}: give a positive number")
        if not 0 < args.snapshot_share <= 1:
            raise ConfigError(
                f"--snapshot-share {args.snapshot_share}: a share of the time, "
                "above 0 and at most 1 (1: only --snapshot-seconds limits)"
            )
        warehouse = os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb")
        snapshot = None if args.no_snapshot else Path(args.snapshot or snapshot_path(warehouse))
        schema = "derived"
        if target == "snowflake":  # no DuckDB file: no snapshot, no retention
            from serving.snowflake import stream_source

            snapshot, args.no_retention = None, True
            args.source = stream_source(args.source)
            schema = os.environ.get("SNOWFLAKE_SCHEMA", "DERIVED").lower()
        settings = Settings(
            target=target, sync_seconds=args.sync_seconds, schema=schema,
            source=args.source, listen=args.listen, token=token, warehouse=warehouse,
            snapshot=snapshot, snapshot_seconds=args.snapshot_seconds,
            snapshot_share=args.snapshot_share,
            browser_origins=tuple(args.browser_origin), simulate=args.simulate,
            memory_limit=check_memory_limit(args.memory_limit),
            retention=None if args.no_retention else _retention_rules(args.retention),
            interventions=_interventions(args),
            online_store=args.online_store,
            definitions=Path(args.definitions) if args.definitions else None,
            refresh_seconds=args.refresh_seconds, dbt_seconds=args.dbt_seconds,
            all_models_seconds=args.all_models_seconds,
            refresh=not args.no_refresh,
            state_dir=Path(args.state_dir), spool=args.spool, batch_seconds=args.batch_seconds,
        )  # fmt: skip
        return Live(settings).run()
    except PersonaError as exc:
        print(f"error: {logs.redact(exc)}", file=sys.stderr)
        return 2


def _retention_rules(path: str | None) -> Any:
    """The rules, read (and checked) before anything starts: those of --retention, else of a
    retention.yml in the working directory, else none (the live mode deletes nothing unasked)."""
    from privacy import retention

    if path is None and not Path("retention.yml").exists():
        return None
    return retention.load(Path(path) if path else None)


def _replica(args: argparse.Namespace, token: str, host: str, port: int) -> int:
    """The API alone, over the live process's Redis (serving/replica.py)."""
    import signal
    import threading

    import uvicorn

    from loader.errors import ConfigError
    from serving.http import build_app
    from serving.replica import Replica
    from serving.stores import open_store

    if not args.online_store.startswith("redis://"):
        raise ConfigError(
            "--replica serves from the live process's store: give --online-store redis://HOST:PORT"
        )
    store = open_store(args.online_store)
    replica = Replica(store)
    replica.start()
    replica.api.refresh_status = replica.status
    app = build_app(replica.api, token, browser_origins=tuple(args.browser_origin))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="off"))  # fmt: skip
    # uvicorn on a thread, as in the live process: SIGTERM and SIGINT stop it cleanly (exit 0)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5) and thread.is_alive():
            pass
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        replica.stopped.set()
        store.close()
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())

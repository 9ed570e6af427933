"""``python -m loader``: load events into the warehouse, or generate a synthetic stream.

python -m loader --source file:events.tsv --sink duckdb:warehouse.duckdb
python -m loader --source 'synthetic:?users=2000&days=30&seed=42' --sink duckdb:warehouse.duckdb
python -m loader generate --users 100 --days 7 --seed 1 > events.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import socket
import sys
from collections.abc import Sequence

from loader.errors import PersonaError
from loader.uris import SINKS_HELP, SOURCES_HELP


def _load_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loader",
        description="Stream Snowplow events into the warehouse in micro-batches. Bad lines are "
        "kept in atomic.failed_events with the reason; nothing is dropped.",
        epilog="Every setting can also come from a YAML file (--config, see loader.example.yml) "
        "or an environment variable PERSONA_<SETTING> (PERSONA_BATCH_ROWS=5000); flags win, then "
        "the environment, then the file. Other commands: 'python -m loader generate --help' "
        "writes a synthetic stream.",
    )
    p.add_argument("--config", help="a YAML file of settings (see loader.example.yml)")
    p.add_argument("--source", help=f"where events come from: {SOURCES_HELP}")
    p.add_argument(
        "--sink",
        help=f"where they go: {SINKS_HELP} (default duckdb:$PERSONA_DUCKDB, else "
        "duckdb:warehouse.duckdb)",
    )
    p.add_argument("--batch-rows", type=int, help="commit after this many events (10000)")
    p.add_argument("--batch-seconds", type=float, help="or after this long (1.0 s)")
    p.add_argument(
        "--batch-bytes", type=int, help="or once it weighs this many bytes (67108864: 64 MiB)"
    )
    p.add_argument("--quiet", action="store_true", default=None, help="no progress, only a summary")
    p.add_argument(
        "--log-format", choices=["text", "json"], help="log lines as text or JSON (text)"
    )
    p.add_argument(
        "--channel",
        help="Snowflake sink: this loader's Snowpipe Streaming channel, one per loader process "
        "(default persona-<hostname>-<hash of --source>)",
    )
    collector = p.add_argument_group("collector (--source http://HOST:PORT)")
    collector.add_argument(
        "--spool", help="directory of the durable spool and its checkpoint (.persona/spool)"
    )
    collector.add_argument(
        "--trust-forwarded-for", action="store_true", default=None,
        help="take the client IP from X-Forwarded-For and the scheme from X-Forwarded-Proto "
        "(only behind a proxy that sets them; ignored otherwise)",
    )  # fmt: skip
    collector.add_argument(
        "--enrichments",
        help="comma-separated optional steps to run, of referrer (refr_medium/source/term), "
        "campaign (mkt_* from utm_* and click ids), useragent (ua_parser_context), bots "
        "(spiders_and_robots); default all, '' for none. Timestamps and URL fields always run",
    )
    collector.add_argument(
        "--spool-max-bytes", type=int,
        help="spooled but not yet loaded beyond this, the collector answers 503 (268435456)",
    )  # fmt: skip
    collector.add_argument(
        "--max-request-bytes", type=int,
        help="a larger request body is refused with 413 (1000000)",
    )  # fmt: skip
    collector.add_argument(
        "--header-timeout", type=float,
        help="seconds a request's head may take to arrive; then 408 and closed (10)",
    )  # fmt: skip
    collector.add_argument(
        "--body-timeout", type=float,
        help="seconds a request's body may take to arrive; then 408 and closed (30)",
    )  # fmt: skip
    collector.add_argument(
        "--keep-alive-timeout", type=float,
        help="seconds a kept-alive connection may stay idle before it is closed (5)",
    )  # fmt: skip
    collector.add_argument(
        "--max-connections", type=int,
        help="open connections at once; one more gets 503 and is closed (1000; fewer if the "
        "open-file limit cannot hold that many)",
    )  # fmt: skip
    collector.add_argument(
        "--collector-restarts", type=int,
        help="times a dead HTTP process is started again in a row (with backoff) before the "
        "loader loads what is spooled and exits with an error (5)",
    )  # fmt: skip
    guard = p.add_argument_group("privacy and schema policy (every source; see docs/hardening.md)")
    guard.add_argument(
        "--anonymize-ip-octets", type=int,
        help="user_ipaddress octets to blank out with x, 0 to 4 (1); IPv6 by 16-bit pairs",
    )  # fmt: skip
    guard.add_argument(
        "--pii-fields",
        help="comma-separated atomic fields to pseudonymize with a salted SHA-256, e.g. "
        "user_id,domain_userid; the salt comes from PERSONA_PII_SALT. Applies to events, "
        "failed events' raw input and the collector's spool",
    )
    guard.add_argument(
        "--schemas-allowed",
        help="comma-separated vendor/name globs of the entity schemas that may become columns "
        "('*', the default; e.g. 'com.snowplowanalytics.*/*,com.acme/*'); other events become "
        "failed events (schema_not_allowed)",
    )
    guard.add_argument(
        "--max-new-columns-per-hour", type=int,
        help="new entity columns admitted per rolling hour (50)",
    )  # fmt: skip
    guard.add_argument(
        "--max-entity-columns", type=int,
        help="entity columns the events table may hold in all (300)",
    )  # fmt: skip
    return p


def _generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loader generate",
        description="Write a deterministic synthetic e-commerce event stream as Snowplow enriched "
        "TSV to stdout (about 100 events per user per 30 days).",
    )
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    return p


def generate(argv: Sequence[str]) -> int:
    from loader.sources.synthetic import SyntheticConfig, generate_lines

    args = _generate_parser().parse_args(argv)
    try:
        cfg = SyntheticConfig(users=args.users, days=args.days, seed=args.seed)
    except ValueError as exc:
        raise PersonaError(str(exc)) from exc
    out = sys.stdout
    try:
        for line in generate_lines(cfg):
            out.write(line)
            out.write("\n")
        out.flush()
    except BrokenPipeError:
        sys.stderr.close()  # the reader has gone (e.g. `| head`); that is not an error
    return 0


def load(argv: Sequence[str]) -> int:
    from loader import logs, pipeline, settings
    from loader.enrich import EnrichConfig
    from loader.privacy import Privacy
    from loader.progress import progress_reporter
    from loader.schema_policy import SchemaPolicy
    from loader.sources.base import Closable, Streaming
    from loader.uris import open_sink, open_source
    from loader.validate import Validate

    args = vars(_load_parser().parse_args(argv))
    config = args.pop("config")
    s = settings.load(args, config)
    logs.configure(s.log_format)
    enrich = EnrichConfig(
        classify_referrer="referrer" in s.enrichments, campaign="campaign" in s.enrichments,
        parse_useragent="useragent" in s.enrichments, detect_bots="bots" in s.enrichments,
    )  # fmt: skip
    privacy = Privacy.from_env(s.pii_fields, s.anonymize_ip_octets)
    source = open_source(
        s.source, spool=s.spool, enrich=enrich, trust_forwarded_for=s.trust_forwarded_for,
        spool_max_bytes=s.spool_max_bytes, max_request_bytes=s.max_request_bytes,
        privacy=privacy,
        header_timeout=s.header_timeout, body_timeout=s.body_timeout,
        keep_alive_timeout=s.keep_alive_timeout, max_connections=s.max_connections,
        collector_restarts=s.collector_restarts,
    )  # fmt: skip
    # one Snowflake channel per host and source: each resumes only from its own positions
    source_key = hashlib.sha1(s.source.encode()).hexdigest()[:8]
    sink = open_sink(
        s.sink, s.channel or f"persona-{socket.gethostname()}-{source_key}",
        streaming=not source.finite,
    )  # fmt: skip
    validate = Validate(
        # the collector protects each record before its spool; the rest are protected here
        None if source.protects_privacy else privacy,
        SchemaPolicy(s.schemas_allowed, s.max_new_columns_per_hour, s.max_entity_columns,
                     sink.entity_columns()),
    )  # fmt: skip
    if isinstance(source, Streaming):  # SIGTERM/SIGINT drain what was accepted, then exit
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: source.stop())
        print(f"listening on {logs.redact(s.source)}; Ctrl-C or SIGTERM to stop", file=sys.stderr)
    try:
        with progress_reporter(enabled=not s.quiet) as report:
            summary = pipeline.run(
                source, sink, batch_rows=s.batch_rows, batch_seconds=s.batch_seconds,
                batch_bytes=s.batch_bytes,
                on_commit=report, validate=validate,
            )  # fmt: skip
    finally:
        sink.close()
        if isinstance(source, Closable):
            source.close()
    print(logs.redact(summary.line(s.sink)))
    if isinstance(source, Streaming) and source.failure is not None:
        raise source.failure  # what was accepted is loaded (above); the source could not go on
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["generate"]:
            return generate(argv[1:])
        return load(argv[1:] if argv[:1] == ["load"] else argv)
    except PersonaError as exc:
        from loader.logs import redact

        print(f"error: {redact(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

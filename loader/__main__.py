"""``python -m loader``: load events into the warehouse, or generate a synthetic stream.

python -m loader --source file:events.tsv --sink duckdb:warehouse.duckdb
python -m loader --source 'synthetic:?users=2000&days=30&seed=42' --sink duckdb:warehouse.duckdb
python -m loader generate --users 100 --days 7 --seed 1 > events.tsv
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from loader import settings
from loader.errors import PersonaError
from loader.sources.base import Item


def _load_parser(prog: str = "python -m loader") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Stream Snowplow events into the warehouse in micro-batches. Bad lines are "
        "kept in atomic.failed_events with the reason; nothing is dropped.",
        epilog="Every setting can also come from a YAML file (--config, see loader.example.yml) "
        "or an environment variable PERSONA_<SETTING> (PERSONA_BATCH_ROWS=5000); flags win, then "
        "the environment, then the file. Other commands: 'python -m loader generate --help' "
        "writes a synthetic stream.",
    )
    p.add_argument("--config", help="a YAML file of settings (see loader.example.yml)")
    settings.add_arguments(p)
    return p


def _generate_parser(prog: str = "python -m loader generate") -> argparse.ArgumentParser:
    from loader.sources.synthetic import SyntheticConfig

    p = argparse.ArgumentParser(
        prog=prog,
        description="Write a deterministic synthetic e-commerce event stream as Snowplow enriched "
        "TSV to stdout (about 100 events per user per 30 days).",
    )
    size = SyntheticConfig()
    p.add_argument("--users", type=int, default=size.users, help="shoppers (%(default)s)")
    p.add_argument("--days", type=int, default=size.days, help="days of traffic (%(default)s)")
    p.add_argument(
        "--seed", type=int, default=size.seed, help="same seed, same bytes (%(default)s)"
    )
    p.add_argument(
        "--end",
        type=datetime.fromisoformat,
        help="the moment the stream ends, a date (2026-01-31) or date-time in UTC; default now. "
        "Give one for a reproducible stream",
    )
    return p


def generate(argv: Sequence[str], prog: str = "python -m loader generate") -> int:
    from loader.sources.synthetic import SyntheticConfig, generate_lines

    args = _generate_parser(prog).parse_args(argv)
    try:
        cfg = SyntheticConfig.ending(args.end, users=args.users, days=args.days, seed=args.seed)
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


def load(argv: Sequence[str], prog: str = "python -m loader") -> int:
    from loader import logs, pipeline
    from loader.enrich import EnrichConfig
    from loader.privacy import Privacy
    from loader.progress import progress_reporter
    from loader.schema_policy import SchemaPolicy
    from loader.sources.base import Closable, Streaming
    from loader.uris import default_channel, open_sink, open_source
    from loader.validate import Validate

    args = vars(_load_parser(prog).parse_args(argv))
    config = args.pop("config")
    s = settings.load(args, config)
    logs.configure(s.log_format)
    enrich = EnrichConfig(
        classify_referrer="referrer" in s.enrichments, campaign="campaign" in s.enrichments,
        parse_useragent="useragent" in s.enrichments, detect_bots="bots" in s.enrichments,
    )  # fmt: skip
    privacy = Privacy.from_env(s.pii_fields, s.anonymize_ip_octets)
    source = open_source(s.source, s, enrich, privacy)
    sink = open_sink(s.sink, s.channel or default_channel(s.source), streaming=not source.finite)
    validate = Validate(
        # the collector protects each record before its spool; the rest are protected here
        None if source.protects_privacy else privacy,
        SchemaPolicy(s.schemas_allowed, s.max_new_columns_per_hour, s.max_entity_columns,
                     sink.entity_columns()),
        suppression(sink),  # persona forget's list: those ids' events are dropped
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


def suppression(sink: object) -> Callable[[Item], Item] | None:
    """The warehouse's suppression list (DuckDB), or None where it has none."""
    from loader.sinks.duckdb import DuckDBSink
    from privacy.suppression import Suppression

    if not isinstance(sink, DuckDBSink):
        return None
    step = Suppression.from_duckdb(sink.path, sink.con)
    return step if len(step) else None


def main(argv: Sequence[str] | None = None, prog: str = "python -m loader") -> int:
    """``prog``: how the user called it (``persona`` passes ``persona load``/``generate``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["generate"]:
            return generate(argv[1:], prog if prog != "python -m loader" else f"{prog} generate")
        return load(argv[1:] if argv[:1] == ["load"] else argv, prog)
    except PersonaError as exc:
        from loader.logs import redact

        print(f"error: {redact(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

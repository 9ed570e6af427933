"""``python -m loader``: load events into the warehouse, or generate a synthetic stream.

python -m loader --source file:events.tsv --sink duckdb:warehouse.duckdb
python -m loader --source 'synthetic:?users=2000&days=30&seed=42' --sink duckdb:warehouse.duckdb
python -m loader generate --users 100 --days 7 --seed 1 > events.tsv
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from loader.errors import PersonaError
from loader.uris import SINKS_HELP, SOURCES_HELP


def _load_parser() -> argparse.ArgumentParser:
    default_db = os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb")
    p = argparse.ArgumentParser(
        prog="python -m loader",
        description="Stream Snowplow events into the warehouse in micro-batches. Bad lines are "
        "kept in atomic.failed_events with the reason; nothing is dropped.",
        epilog="Other commands: 'python -m loader generate --help' writes a synthetic stream.",
    )
    p.add_argument("--source", required=True, help=f"where events come from: {SOURCES_HELP}")
    p.add_argument(
        "--sink",
        default=f"duckdb:{default_db}",
        help=f"where they go: {SINKS_HELP} (default: duckdb:$PERSONA_DUCKDB or "
        "duckdb:warehouse.duckdb)",
    )
    p.add_argument("--batch-rows", type=int, default=10_000, help="commit after this many events")
    p.add_argument(
        "--batch-seconds", type=float, default=1.0, help="or after this long (default 1 s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary line")
    collector = p.add_argument_group("collector (--source http://HOST:PORT)")
    collector.add_argument(
        "--spool",
        default=os.environ.get("PERSONA_SPOOL", ".persona/spool"),
        help="directory of the durable spool and its checkpoint (default .persona/spool)",
    )
    collector.add_argument(
        "--anonymize-ip-octets", type=int, default=1, choices=range(5),
        help="IPv4 octets to blank out (0 keeps the address); default 1",
    )  # fmt: skip
    collector.add_argument(
        "--pii-fields", default="",
        help="comma-separated atomic fields to pseudonymize with a salted SHA-256, e.g. "
        "user_id,user_ipaddress; the salt comes from PERSONA_PII_SALT",
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
    from loader import pipeline
    from loader.progress import progress_reporter
    from loader.uris import open_sink, open_source

    args = _load_parser().parse_args(argv)
    if args.batch_rows < 1 or args.batch_seconds <= 0:
        raise PersonaError("--batch-rows must be >= 1 and --batch-seconds > 0")
    from loader.enrich import EnrichConfig

    pii = tuple(f.strip() for f in args.pii_fields.split(",") if f.strip())
    enrich = EnrichConfig.from_env(pii_fields=pii, anonymize_ip_octets=args.anonymize_ip_octets)
    source = open_source(args.source, spool=args.spool, enrich=enrich)
    sink = open_sink(args.sink)
    stop = getattr(source, "stop", None)
    if stop is not None:  # a streaming source: SIGTERM/SIGINT drain what was accepted, then exit
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop())
        print(f"listening on {args.source}; Ctrl-C or SIGTERM to stop", file=sys.stderr)
    try:
        with progress_reporter(enabled=not args.quiet) as report:
            summary = pipeline.run(
                source,
                sink,
                batch_rows=args.batch_rows,
                batch_seconds=args.batch_seconds,
                on_commit=report,
            )
    finally:
        sink.close()
        if hasattr(source, "close"):
            source.close()
    print(summary.line(args.sink))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["generate"]:
            return generate(argv[1:])
        return load(argv[1:] if argv[:1] == ["load"] else argv)
    except PersonaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

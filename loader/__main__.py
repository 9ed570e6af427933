"""``python -m loader``: load events into the warehouse, or generate a synthetic stream.

python -m loader --source file:events.tsv --sink duckdb:warehouse.duckdb
python -m loader --source 'synthetic:?users=2000&days=30&seed=42' --sink duckdb:warehouse.duckdb
python -m loader generate --users 100 --days 7 --seed 1 > events.tsv
"""

from __future__ import annotations

import argparse
import os
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
    source = open_source(args.source)
    sink = open_sink(args.sink)
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

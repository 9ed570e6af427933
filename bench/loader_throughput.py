"""Enriched TSV file → DuckDB: the loader next to DuckDB's own read_csv of the same file."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from loader import pipeline
from loader.contract import FIELDS, Kind
from loader.privacy import Privacy
from loader.schema_policy import SchemaPolicy
from loader.settings import Settings
from loader.sinks.duckdb import SQL_TYPES, DuckDBSink
from loader.sources.synthetic import SyntheticConfig, generate_lines
from loader.sources.tsv import TsvFileSource
from loader.validate import Validate


def best_of(repeat: int, run: Callable[[], None]) -> float:
    """Median wall time of ``repeat`` runs (the median resists one noisy run on 2 cores)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def fresh(path: Path) -> Path:
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    return path


def load_with_loader(tsv: Path, db: Path) -> None:
    """As ``python -m loader --source file:TSV --sink duckdb:DB`` does it."""
    sink = DuckDBSink(fresh(db))
    sink.bulk_load()  # what the CLI does for a finite source
    # and the CLI's validate step at its defaults: IP anonymization, the schema policy
    validate = Validate(Privacy.from_env((), Settings(source="-").anonymize_ip_octets),
                        SchemaPolicy(known=sink.entity_columns()))  # fmt: skip
    pipeline.run(TsvFileSource(str(tsv)), sink, validate=validate)
    sink.close()


def load_with_read_csv(tsv: Path, db: Path) -> None:
    """DuckDB parsing the same TSV into a table with the same typed columns (JSON as text)."""
    columns = {
        f.name: SQL_TYPES.get(f.kind, "VARCHAR") if f.kind is not Kind.BOOL else "VARCHAR"
        for f in FIELDS
    }
    con = duckdb.connect(str(fresh(db)))
    con.execute(
        "create table events as select * from read_csv(?, delim = '\t', header = false, "
        "quote = '', escape = '', columns = ?, timestampformat = '%Y-%m-%d %H:%M:%S.%g')",
        [str(tsv), columns],
    )
    con.close()


def parse_with_sdk(tsv: Path) -> int:
    """Snowplow's Python analytics SDK turning each line into its JSON-ready dict (parse only:
    nothing is written); returns how many lines it refused."""
    from snowplow_analytics_sdk.event_transformer import (
        SnowplowEventTransformationException,
        transform,
    )

    refused = 0
    with tsv.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                transform(line.rstrip("\n"))
            except SnowplowEventTransformationException:
                refused += 1
    return refused


def run(out: Path, users: int, days: int, repeat: int) -> dict:
    tsv = out / "events.tsv"
    lines = 0

    def generate() -> None:
        nonlocal lines
        with tsv.open("w") as fh:
            lines = 0
            for line in generate_lines(SyntheticConfig(users=users, days=days, seed=0)):
                fh.write(line + "\n")
                lines += 1

    generate_s = best_of(1, generate)
    try:
        import snowplow_analytics_sdk  # noqa: F401 - in the dev extra
    except ImportError:
        has_sdk = False
    else:
        has_sdk = True
    # Interleaved, one round of each per repeat: load on a shared machine drifts, and a ratio
    # taken within one round compares like with like.
    loader_t, csv_t, sdk_t, refused = [], [], [], 0
    for _ in range(repeat):
        loader_t.append(timed(lambda: load_with_loader(tsv, out / "loader.duckdb")))
        csv_t.append(timed(lambda: load_with_read_csv(tsv, out / "read_csv.duckdb")))
        if has_sdk:
            started = time.perf_counter()
            refused = parse_with_sdk(tsv)
            sdk_t.append(time.perf_counter() - started)
    sdk = (
        {
            "sdk_parse_events_per_s": lines / statistics.median(sdk_t),
            "sdk_vs_read_csv": statistics.median(c / t for c, t in zip(csv_t, sdk_t, strict=True)),
            "sdk_refused_lines": refused,
        }
        if has_sdk
        else {}
    )
    return {
        "events": lines,
        "generate_events_per_s": lines / generate_s,
        "loader_events_per_s": lines / statistics.median(loader_t),
        "duckdb_read_csv_events_per_s": lines / statistics.median(csv_t),
        # the median of the rounds' ratios
        "loader_vs_read_csv": statistics.median(
            c / t for c, t in zip(csv_t, loader_t, strict=True)
        ),
        "loader_vs_read_csv_rounds": [c / t for c, t in zip(csv_t, loader_t, strict=True)],
        **sdk,
    }

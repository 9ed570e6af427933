"""``python -m bench``: loader throughput, next to DuckDB's own CSV reader on the same file.

    python -m bench [--users 2000] [--days 30] [--repeat 3]

Results print as a table and are written to bench/out/results.json; BENCHMARKS.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from loader import pipeline
from loader.contract import FIELDS, Kind
from loader.sinks.duckdb import SQL_TYPES, DuckDBSink
from loader.sources.synthetic import SyntheticConfig, generate_lines
from loader.sources.tsv import TsvFileSource

OUT = Path(__file__).resolve().parent / "out"


def best_of(repeat: int, run: Callable[[], None]) -> float:
    """Median wall time of ``repeat`` runs (the median resists one noisy run on 2 cores)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fresh(path: Path) -> Path:
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    return path


def load_with_loader(tsv: Path, db: Path) -> None:
    sink = DuckDBSink(fresh(db))
    pipeline.run(TsvFileSource(str(tsv)), sink)
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    console = Console()
    cfg = SyntheticConfig(users=args.users, days=args.days, seed=0)

    tsv = OUT / "events.tsv"
    lines = 0

    def generate() -> None:
        nonlocal lines
        with tsv.open("w") as fh:
            lines = 0
            for line in generate_lines(cfg):
                fh.write(line + "\n")
                lines += 1

    with console.status("generating"):
        generate_s = best_of(1, generate)
    with console.status(f"loader: {lines:,} events, {args.repeat} runs"):
        loader_s = best_of(args.repeat, lambda: load_with_loader(tsv, OUT / "loader.duckdb"))
    with console.status(f"duckdb read_csv: {lines:,} events, {args.repeat} runs"):
        csv_s = best_of(args.repeat, lambda: load_with_read_csv(tsv, OUT / "read_csv.duckdb"))

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "events": lines,
        "generate_events_per_s": lines / generate_s,
        "loader_events_per_s": lines / loader_s,
        "duckdb_read_csv_events_per_s": lines / csv_s,
        "loader_vs_read_csv": csv_s / loader_s,
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    table = Table(title=f"Enriched TSV → DuckDB, {lines:,} events ({results['machine']})")
    table.add_column("what")
    table.add_column("events/s", justify="right")
    table.add_column("vs read_csv", justify="right")
    table.add_row("synthetic generator (TSV out)", f"{lines / generate_s:,.0f}", "")
    table.add_row("loader: file → parse → Arrow → DuckDB", f"{lines / loader_s:,.0f}",
                  f"{csv_s / loader_s:.2f}x")  # fmt: skip
    table.add_row("DuckDB read_csv, same columns", f"{lines / csv_s:,.0f}", "1.00x")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m bench forget``: forgetting one person in a built warehouse, next to a full
refresh of the same warehouse in the same run; and the loader's throughput with 10,000
suppressed ids next to none.

The warehouse: the synthetic shop at ``events`` events (loaded, then the realtime models built
with ``--full-refresh``, timed: that is the rebuild a forget avoids). The forgotten person is
the user with the most events (the slowest case: most devices and sessions). The forget is
``privacy.forget.forget`` as ``persona forget`` runs it (suppress_with_delete, checkpoint
included), then ``--compact`` (the rewrite of the file) on its own.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.incremental import EVENTS_PER_USER_DAY, load
from loader import pipeline
from loader.schema_policy import SchemaPolicy
from loader.sinks.duckdb import DuckDBSink
from loader.sources.synthetic import SyntheticConfig, SyntheticSource, generate_lines
from loader.sources.tsv import TsvFileSource
from loader.validate import Validate
from privacy import forget as fg
from privacy.salt import hash_id
from privacy.suppression import Suppression

ROOT = Path(__file__).resolve().parents[1]
KEY = b"bench-salt-0123456789abcdef"


def full_refresh(warehouse: Path, work: Path) -> float:
    """dbt in a process of its own (in this one, dbt-duckdb would keep the file attached)."""
    shutil.copy(ROOT / "profiles.example.yml", work / "profiles.yml")
    env = os.environ | {"PERSONA_DUCKDB": str(warehouse), "PERSONA_TARGET": "duckdb"}
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--selector", "realtime",
         "--full-refresh", "--exclude-resource-type", "test", "unit_test", "--vars",
         '{"as_of": "latest_event"}', "--project-dir", str(ROOT), "--profiles-dir", str(work),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs"), "--quiet"],
        env=env, check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def forget_vs_refresh(work: Path, events: int) -> dict:
    warehouse = work / "warehouse.duckdb"
    users = max(1, round(events / (EVENTS_PER_USER_DAY * 30)))
    started = time.perf_counter()
    loaded = load(warehouse, iter(SyntheticSource(SyntheticConfig(users=users, days=30, seed=11))),
                  events)  # fmt: skip
    load_s = time.perf_counter() - started
    refresh_s = full_refresh(warehouse, work)
    with duckdb.connect(str(warehouse)) as con:
        user = con.execute("select user_id from atomic.events where user_id is not null "
                           "group by 1 order by count(*) desc limit 1").fetchone()[0]  # fmt: skip
    started = time.perf_counter()
    with duckdb.connect(str(warehouse)) as con:
        outcome = fg.forget(con, fg.Ids("user_id", user), "suppress_with_delete", KEY)
    forget_s = time.perf_counter() - started
    started = time.perf_counter()
    fg.compact(str(warehouse))
    compact_s = time.perf_counter() - started
    r = outcome.request
    return {"events": loaded, "users": users, "load_s": load_s, "full_refresh_s": refresh_s,
            "forget_s": forget_s, "compact_s": compact_s, "ids_resolved": r.ids_resolved,
            "rows_removed": sum(r.rows_removed.values()),
            "forget_vs_full_refresh": forget_s / refresh_s}  # fmt: skip


def suppression_throughput(work: Path, events: int, repeat: int) -> dict:
    """The file source → DuckDB, with the CLI's schema policy; no suppression, then a list of
    10,000 hashes, none of them the stream's (every event looked up, none dropped)."""
    tsv = work / "events.tsv"
    users = max(1, round(events / (EVENTS_PER_USER_DAY * 30)))
    lines = list(generate_lines(SyntheticConfig(users=users, days=30, seed=5)))
    tsv.write_text("\n".join(lines) + "\n")
    # none of the stream's visitors: the cost of looking every event up, nothing dropped
    hashes = {hash_id(KEY, f"someone-{i}"): None for i in range(10_000)}

    def once(step: Suppression | None) -> float:
        db = work / "throughput.duckdb"
        for stale in work.glob("throughput.duckdb*"):
            stale.unlink()
        sink = DuckDBSink(db)
        sink.bulk_load()
        validate = Validate(None, SchemaPolicy(known=sink.entity_columns()), suppression=step)
        started = time.perf_counter()
        summary = pipeline.run(TsvFileSource(str(tsv)), sink, validate=validate)
        sink.close()
        return (summary.good + summary.failed) / (time.perf_counter() - started)

    none: list[float] = []
    listed: list[float] = []
    for i in range(repeat):  # interleaved, alternating which goes first: same machine for both
        rounds = [lambda: none.append(once(None)),
                  lambda: listed.append(once(Suppression(KEY, hashes)))]  # fmt: skip
        for measure in rounds if i % 2 == 0 else rounds[::-1]:
            measure()
    return {"events": len(lines), "events_per_s_none": statistics.median(none),
            "events_per_s_10k": statistics.median(listed),
            "ratio": statistics.median(listed) / statistics.median(none)}  # fmt: skip


def run(out: Path, events: int, throughput_events: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        work = Path(tmp)
        return {
            "forget": forget_vs_refresh(work, events),
            "suppression": suppression_throughput(work, throughput_events, repeat),
        }

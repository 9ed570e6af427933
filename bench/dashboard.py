"""How long each dashboard page takes to render, server side, on the demo warehouse (~200,000
events) and on ~5 million events; next to it, in the same run, the page's biggest query against
the base model the aggregate replaces (what a page would cost without `models/reporting`).

A page's time is one run of its script through Streamlit's AppTest with the query cache
emptied first: every query runs against the file, as on a first visit after a refresh (later
visits read the cache). The browser's own drawing is not included. The Customer 360 page is
timed with the top customer chosen.

A warehouse is built once (synthetic shop → loader → `dbt build`, retrain included) under
bench/out/dashboard/ and reused by later runs; the 5M one takes about half an hour on 2 cores.
`--dashboard-warehouses A B` times existing warehouses instead.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.incremental import EVENTS_PER_USER_DAY, ROOT, load
from loader.sources.synthetic import SyntheticConfig, SyntheticSource

PAGES = ("pipeline", "traffic", "segments", "customer", "anomalies", "rulesets")
# (page, the aggregate query, the same answer from the base model)
BASELINES = (
    (
        "pipeline",
        "select date_trunc('hour', bucket_start), sum(events) from derived.pipeline_minutely "
        "group by 1",
        "select date_trunc('hour', collector_tstamp), count(*) from derived.events group by 1",
    ),
    (
        "traffic",
        "select session_date, channel, sum(sessions) from derived.sessions_daily group by all",
        "select cast(start_tstamp as date), default_channel_group, count(*) "
        "from derived.sessions group by all",
    ),
)


def build(path: Path, events: int) -> Path:
    """A warehouse of about ``events`` events, as `make demo` builds one (kept for reuse)."""
    done = path.with_suffix(".built")
    if done.exists() and path.exists():
        return path
    for stale in path.parent.glob(f"{path.name}*"):
        stale.unlink()
    work = path.parent
    (work / "profiles.yml").write_text((ROOT / "profiles.example.yml").read_text())
    users = max(1, round(events / (EVENTS_PER_USER_DAY * 30)))
    load(path, iter(SyntheticSource(SyntheticConfig(users=users, days=30, seed=0))), events)
    import subprocess

    env = os.environ | {"PERSONA_DUCKDB": str(path)}
    for selector in ("realtime", "retrain"):
        subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "dbt"),
                "build",
                "--quiet",
                "--selector",
                selector,
                "--exclude-resource-type",
                "test",
                "unit_test",
                "--vars",
                "{as_of: latest_event}",
                "--project-dir",
                str(ROOT),
                "--profiles-dir",
                str(work),
                "--target-path",
                str(work / f"target-{path.stem}"),
                "--log-path",
                str(work / "logs"),
            ],
            env=env,
            check=True,
        )
    done.touch()
    return path


def time_pages(warehouse: Path, rounds: int) -> dict[str, float]:
    """Median seconds per page, cache emptied before each run."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["PERSONA_DUCKDB"] = str(warehouse)
    os.environ.pop("PERSONA_TARGET", None)
    app = str(ROOT / "dashboard" / "app.py")
    seconds: dict[str, list[float]] = {page: [] for page in PAGES}
    for _ in range(rounds):
        for page in PAGES:
            at = AppTest.from_file(app, default_timeout=300)
            at.run()
            at.switch_page(f"views/{page}.py")
            if page == "customer":
                at.run()
                at.selectbox(key="customer_top").select_index(0)
            st.cache_data.clear()
            started = time.perf_counter()
            at.run()
            seconds[page].append(time.perf_counter() - started)
            if at.exception or at.error:
                raise AssertionError(f"{page}: {[e.value for e in [*at.exception, *at.error]]}")
    return {page: statistics.median(s) for page, s in seconds.items()}


def time_baselines(warehouse: Path, rounds: int) -> list[dict[str, Any]]:
    rows = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for page, aggregate, base in BASELINES:
            timed = {}
            for name, sql in (("aggregate", aggregate), ("base", base)):
                runs = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    con.execute(sql).fetchall()
                    runs.append(time.perf_counter() - started)
                timed[name] = statistics.median(runs)
            rows.append({"page": page, "aggregate_s": timed["aggregate"], "base_s": timed["base"]})
    return rows


def run(
    out: Path, sizes: tuple[int, ...], rounds: int, warehouses: list[Path] | None = None
) -> dict[str, Any]:
    work = out / "dashboard"
    work.mkdir(parents=True, exist_ok=True)
    if not warehouses:
        warehouses = [build(work / f"warehouse-{size}.duckdb", size) for size in sizes]
    points = []
    for warehouse in warehouses:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            [(events,)] = con.execute("select count(*) from derived.events").fetchall()
            [(sessions,)] = con.execute("select count(*) from derived.sessions").fetchall()
        points.append(
            {
                "warehouse": str(warehouse),
                "events": events,
                "sessions": sessions,
                "pages_s": time_pages(warehouse, rounds),
                "baselines": time_baselines(warehouse, rounds),
            }
        )
    return {"rounds": rounds, "points": points}

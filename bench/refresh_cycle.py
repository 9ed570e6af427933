"""One refresh cycle of the live process, by part: the replay of dbt's SQL (serving/plan.py),
then the batch sync into the online store (serving/batch.py), on the serving bench's warehouse
(bench/serving.py builds it once: 2,000 users x 30 days).

A profile reflects an event after the refresh loop finishes the cycle under way and runs one
more, so the cycle's length is what profile freshness is made of. Two measurements, each with
its comparison from the same run:

- ``cycle``, in this process: a few new events (a new visitor's), then a replay of the served
  models (as most live refreshes do) and the sync, cycle after cycle, alternately with each
  statement sent on its own (how replays ran before) and with one script per model (now);
  per-model seconds; all of it again while a Python thread holds the GIL most of the time (the
  API's threads under load share the process with the refresh).
- ``live``: ``python -m serving`` on a copy of the warehouse, 30 visits 0.7 s apart each polled
  by ``decide`` until its profile is known (bench/serving.py's profile freshness), with the
  snapshot published as before (every 30 s: ``--snapshot-share 1``), as now (its copies take at
  most 5 % of the time) and not at all (``--no-snapshot``): the freshness, and each refresh's
  parts from the process's log (models, sync, what listens to the sync).
"""

from __future__ import annotations

import itertools
import re
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import serving as live_bench

# (the parts: since they are logged; a process of older code logs the total alone)
REFRESHED = re.compile(
    r"refreshed \((?P<mode>[^)]*)\) in (?P<total>[\d.]+) s(?: \(models (?P<models>[\d.]+), "
    r"sync (?P<sync>[\d.]+), listeners (?P<listeners>[\d.]+)\))?"
)
PUBLISHED = re.compile(r"snapshot published to \S+ in (?P<seconds>[\d.]+) s")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
            "max": round(ordered[-1], 3), "n": len(ordered)}  # fmt: skip


class _Busy:
    """A thread of pure-Python work (JSON in and out, a sort), as a loaded API's threads are:
    it holds the GIL whenever the refresh gives it up."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import orjson

        payload = {"profile": {f"field_{i}": i for i in range(40)}, "items": list(range(50))}
        while not self.stop.is_set():
            orjson.loads(orjson.dumps(payload))
            sorted(range(200), key=lambda x: -x)

    def __enter__(self) -> _Busy:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join()


def cycle(warehouse: Path, work: Path, cycles: int = 10) -> dict[str, Any]:
    """Alternate cycles of the two ways of sending a replay, quiet then with a busy thread."""
    import duckdb

    from loader import pipeline
    from loader.enriched import parse_line
    from loader.sinks.duckdb import DuckDBSink
    from loader.sources.synthetic import SyntheticConfig, generate_lines
    from serving.batch import BatchSync
    from serving.live import Refresher, Settings
    from serving.stores.memory import MemoryStore

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    copy = work / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    sink = DuckDBSink(str(copy))  # first: the connections below share its database
    con = duckdb.connect(str(copy))
    con.execute("SET memory_limit = '1GB'")  # as the live process
    settings = Settings(source="-", listen="127.0.0.1:0", warehouse=str(copy), token="-",
                        state_dir=work / "state")  # fmt: skip
    sync = BatchSync(MemoryStore())
    refresher = Refresher(settings, sync, con)
    seeds = itertools.count(1000)

    def arrive() -> None:  # a new visitor's first events, stamped today
        config = SyntheticConfig.ending(users=3, days=1, seed=next(seeds))
        lines = itertools.islice(generate_lines(config), 6)
        pipeline.run((parse_line(line) for line in lines), sink)

    for _ in range(4):  # dbt's first run builds what later runs refresh: no plan from it
        arrive()
        if not refresher.refresh():
            raise RuntimeError(f"the refresh failed: {refresher.last_error}")
        if refresher.plan is not None:
            break
    plan = refresher.plan
    if plan is None:
        raise RuntimeError("dbt recorded no replayable plan")
    served = [step for step in plan.steps if step.node in refresher.serving]

    def replay(per_statement: bool) -> dict[str, float]:
        seconds: dict[str, float] = {}
        cur = con.cursor()
        cur.execute("begin")
        for step in served:
            started = time.perf_counter()
            for sql in step.statements if per_statement else [step.script]:
                cur.execute(sql)
            seconds[step.node.rsplit(".", 1)[-1]] = time.perf_counter() - started
        started = time.perf_counter()
        cur.execute("commit")
        seconds["commit"] = time.perf_counter() - started
        cur.close()
        return seconds

    def rounds(label: str) -> Iterator[tuple[str, str, dict[str, float], float]]:
        for i in range(2 * cycles):
            arrive()
            way = "statements" if i % 2 else "script"
            parts = replay(per_statement=way == "statements")
            yield label, way, parts, sync.sync(con.cursor()).seconds

    results: dict[str, Any] = {
        "served_models": len(served),
        "statements": sum(len(step.statements) for step in served),
    }
    for label in ("quiet", "busy thread"):
        runs = []
        if label == "quiet":
            runs = list(rounds(label))
        else:
            with _Busy():
                runs = list(rounds(label))
        out: dict[str, Any] = {}
        for way in ("statements", "script"):
            mine = [(parts, synced) for _, w, parts, synced in runs if w == way]
            out[way] = {"replay_s": _stats([sum(p.values()) for p, _ in mine]),
                        "sync_s": _stats([s for _, s in mine]),
                        "cycle_s": _stats([sum(p.values()) + s for p, s in mine])}  # fmt: skip
            if label == "quiet" and way == "script":
                models: dict[str, list[float]] = {}
                for parts, _ in mine:
                    for name, seconds in parts.items():
                        models.setdefault(name, []).append(seconds)
                out["models_ms"] = dict(sorted(
                    ((n, round(1000 * statistics.median(v), 1)) for n, v in models.items()),
                    key=lambda kv: -kv[1]))  # fmt: skip
        results[label] = out
    con.close()
    sink.close()
    return results


def live(warehouse: Path, work: Path, flags: list[str], probes: int = 30) -> dict[str, Any]:
    """``python -m serving`` on a copy: warmed until it replays, then the profile probes."""
    pairs, products, _ = live_bench.pick_ids(warehouse, 60)
    devices = [d for d, _ in pairs]
    server = live_bench.Live(work, warehouse, flags)
    try:
        server.wait_serving()
        health: dict[str, Any] = {}
        for start in range(0, len(devices), 5):  # dbt twice (the plan), then a replay
            batch = devices[start : start + 5]
            live_bench._in_client("warm", api=server.api, collector=server.collector,
                                  devices=batch, products=products)  # fmt: skip
            health = server.wait_quiet(refreshes=start // 5 + 1, snapshots=0, timeout=180)
            if health.get("refresh_replays", 0) >= 1:
                break
        server.phase = "probes"
        probed_from = len(server.log.read_text().splitlines())
        profile = live_bench._in_client("profile", api=server.api, collector=server.collector,
                                        probes=probes, every=0.7)  # fmt: skip
    finally:
        server.stop()
    refreshes: list[dict[str, float]] = []
    snapshots: list[float] = []
    for line in server.log.read_text().splitlines()[probed_from:]:
        if (m := REFRESHED.search(line)) and m["mode"].startswith("replay"):
            refreshes.append({k: float(m[k]) for k in ("total", "models", "sync", "listeners")
                              if m[k] is not None})  # fmt: skip
        elif m := PUBLISHED.search(line):
            snapshots.append(float(m["seconds"]))
    return {"flags": flags, "freshness_s": profile["visible"], "each_s": profile["each_s"],
            "misses": profile["misses"],
            "refresh_s": {k: _stats([r[k] for r in refreshes if k in r])
                          for k in ("total", "models", "sync", "listeners")},
            "snapshots_during": snapshots}  # fmt: skip


def run(out: Path, *, users: int = 2000, days: int = 30, cycles: int = 10,
        live_runs: bool = True, progress: Any = print) -> dict[str, Any]:  # fmt: skip
    work = out / "refresh"
    progress(f"warehouse: {users} users x {days} days (bench/serving.py's, built once)")
    warehouse = live_bench.built_warehouse(out / "serving", users, days)
    progress(f"cycle: {cycles} replays each way, quiet then beside a busy thread")
    result: dict[str, Any] = {"cycle": cycle(warehouse, work / "cycle", cycles)}
    if live_runs:
        result["live"] = {}
        variants: tuple[tuple[str, list[str]], ...] = (
            ("snapshot every 30 s", ["--snapshot-share", "1"]),
            ("snapshot, 5 % of the time", []),
            ("no snapshot", ["--no-snapshot"]),
        )
        for name, flags in variants:
            progress(f"live: python -m serving {' '.join(flags)}, 30 profile probes")
            result["live"][name] = live(warehouse, work / re.sub(r"\W+", "_", name), flags)
    return result

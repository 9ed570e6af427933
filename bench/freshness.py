"""End-to-end freshness: from an event's arrival at the loader to its effect in `profiles` and
`segment_membership`, measured while events stream.

One process, as the local live mode runs (ARCHITECTURE.md, decision 6): a loader thread streams
background shoppers plus probe customers into DuckDB in 1-second micro-batches, and a refresh
thread runs the dbt models under `segment_membership` in-process, back to back, on the parsed
manifest (no re-parse per cycle). A probe is a new logged-in customer who views a product and
adds it to the cart: it has arrived when the loader takes it, and it has taken effect when a
finished refresh shows its profile, and shows it in the cart_abandoners segment.
"""

from __future__ import annotations

import copy
import itertools
import os
import queue
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from loader import pipeline
from loader.enriched import Event, parse_line
from loader.sinks.duckdb import DuckDBSink
from loader.sources.synthetic import SyntheticConfig, SyntheticSource, generate_lines

ROOT = Path(__file__).resolve().parents[1]
ACTION = "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1"
WEB_PAGE = "contexts_com_snowplowanalytics_snowplow_web_page_1"
TIMESTAMPS = ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp", "derived_tstamp",
              "etl_tstamp")  # fmt: skip
SELECT = "+profiles +segment_membership"


def _templates() -> tuple[Event, Event]:
    lines = itertools.islice(generate_lines(SyntheticConfig(users=30, days=1, seed=3)), 5000)
    events = [e for e in map(parse_line, lines) if isinstance(e, dict)]
    view = next(e for e in events if e["event_name"] == "page_view")
    cart = next(e for e in events if (e.get(ACTION) or {}).get("type") == "add_to_cart")
    return view, cart


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _visit(templates: tuple[Event, ...], user_id: str | None) -> list[Event]:
    """A fresh device and session doing what the templates do, stamped now."""
    device, session, page = (str(uuid.uuid4()) for _ in range(3))
    visit = []
    for template in templates:
        event = copy.deepcopy(template)
        now = _now()
        event.update({t: now for t in TIMESTAMPS})
        event.update(event_id=str(uuid.uuid4()), domain_userid=device, domain_sessionid=session,
                     network_userid=device, user_id=user_id)  # fmt: skip
        event[WEB_PAGE] = [{"_schema_version": "1-0-0", "id": page}]
        visit.append(event)
    return visit


class Stream:
    """Background visits at ``rate`` events/s plus one probe customer every ``probe_every`` s."""

    def __init__(self, seconds: float, rate: float, probe_every: float) -> None:
        self.view, self.cart = _templates()
        self.seconds, self.rate, self.probe_every = seconds, rate, probe_every
        self.arrived: dict[str, float] = {}

    def __iter__(self) -> Iterator[Event | None]:
        started = time.monotonic()
        next_probe, sent = started + 1.0, 0
        while (elapsed := time.monotonic() - started) < self.seconds:
            due = int(elapsed * self.rate)
            while sent < due:
                yield from _visit((self.view,), None)
                sent += 1
            if time.monotonic() >= next_probe:
                probe = f"probe-{len(self.arrived):05d}"
                self.arrived[probe] = time.monotonic()
                yield from _visit((self.view, self.cart), probe)
                next_probe += self.probe_every
            yield None  # idle tick: lets the loader commit on time
            time.sleep(0.01)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    out: Path, users: int, days: int, seconds: float, rate: float, batch_seconds: float = 1.0
) -> dict:
    from dbt.cli.main import dbtRunner

    work = out / "freshness"
    work.mkdir(parents=True, exist_ok=True)
    (work / "profiles.yml").write_text((ROOT / "profiles.example.yml").read_text())
    warehouse = work / "warehouse.duckdb"
    for stale in work.glob("warehouse.duckdb*"):
        stale.unlink()
    os.environ.update(PERSONA_DUCKDB=str(warehouse), PERSONA_SCHEMA="derived")
    common = ["--project-dir", str(ROOT), "--profiles-dir", str(work), "--target-path",
              str(work / "target"), "--log-path", str(work / "logs"), "--quiet"]  # fmt: skip

    history = DuckDBSink(warehouse)
    pipeline.run(SyntheticSource(SyntheticConfig(users=users, days=days, seed=5)), history,
                 batch_rows=50_000)  # fmt: skip
    history.close()
    parsed = dbtRunner().invoke(["parse", *common])
    runner = dbtRunner(manifest=parsed.result)
    build = ["build", "--select", SELECT, "--exclude-resource-type", "test", "unit_test", *common]
    initial = runner.invoke(build)
    assert initial.success, initial.exception
    # views need creating once, not on every refresh: the live loop leaves them out
    build = [*build, "--exclude", "config.materialized:view"]

    stream = Stream(seconds, rate, probe_every=0.5)
    sink = DuckDBSink(warehouse)
    errors: queue.Queue[BaseException] = queue.Queue()

    def load() -> None:
        try:
            pipeline.run(stream, sink, batch_seconds=batch_seconds)
        except BaseException as error:  # reported by the main thread
            errors.put(error)

    loader = threading.Thread(target=load, name="loader")
    loader.start()
    seen: dict[str, dict[str, float]] = {"profiles": {}, "segment_membership": {}}
    cycles: list[float] = []
    reader = duckdb.connect(str(warehouse))
    after_stream = 0  # refreshes after the stream ended: the last probes need one or two
    while loader.is_alive() or (
        after_stream < 3 and len(seen["segment_membership"]) < len(stream.arrived)
    ):
        after_stream += not loader.is_alive()
        started = time.monotonic()
        result = runner.invoke(build)
        if not result.success:
            raise RuntimeError(f"refresh failed: {result.exception}")
        done = time.monotonic()
        cycles.append(done - started)
        for table, query in (
            ("profiles", "select user_id from derived.profiles where user_id like 'probe-%'"),
            ("segment_membership", "select user_id from derived.segment_membership "
             "where segment = 'cart_abandoners' and user_id like 'probe-%'"),
        ):  # fmt: skip
            for (probe,) in reader.execute(query).fetchall():
                seen[table].setdefault(probe, done)
    loader.join()
    sink.close()
    reader.close()
    if not errors.empty():
        raise errors.get()
    result: dict = {"history_events_approx": users * days * 3.5, "stream_events_per_s": rate,
                    "batch_seconds": batch_seconds,
                    "seconds": seconds, "probes": len(stream.arrived),
                    "refresh_cycles": len(cycles),
                    "refresh_cycle_s_median": statistics.median(cycles)}  # fmt: skip
    for table, times in seen.items():
        latencies = [times[p] - t for p, t in stream.arrived.items() if p in times]
        assert len(latencies) == len(stream.arrived), f"{table}: probes never showed up"
        result[f"{table}_p50_s"] = _percentile(latencies, 0.5)
        result[f"{table}_p95_s"] = _percentile(latencies, 0.95)
        result[f"{table}_max_s"] = max(latencies)
    return result

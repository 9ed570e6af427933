"""``python -m bench``: every benchmark, each next to its baseline from the same run.

    python -m bench                  # all
    python -m bench loader           # enriched TSV → DuckDB, next to DuckDB's read_csv
    python -m bench incremental      # incremental dbt run next to a full refresh
    python -m bench collector        # the collector under load from a second process
    python -m bench kafka            # a Kafka topic → DuckDB, next to the file source
    python -m bench freshness        # event arrival -> profiles / segments, while streaming
    python -m bench rulesets         # recommendation rule-set build at 1M and 10M interactions
                                     # (--changed 0.01: the next retrain, reuse vs everyone)
    python -m bench udf              # persona_recommend latency per SQL call, next to a lookup
    python -m bench serving          # the live API under load (reads, decide), freshness, memory
    python -m bench refresh          # the live refresh cycle by part (replay, sync); snapshot
    python -m bench interventions    # tracker POST -> SSE / webhook receipt; rule evaluation cost
    python -m bench dashboard        # each dashboard page's render time at 200k and 5M events
    python -m bench forget           # forget one user next to a full refresh; suppression cost

Results print as tables and are written to bench/out/<name>.json; BENCHMARKS.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import (
    collector,
    dashboard,
    forget,
    freshness,
    incremental,
    interventions,
    kafka,
    loader_throughput,
    refresh_cycle,
    rulesets,
    serving,
    udf,
)

OUT = Path(__file__).resolve().parent / "out"
MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _save(name: str, results: dict) -> None:
    (OUT / f"{name}.json").write_text(json.dumps({"machine": MACHINE, **results}, indent=2))


def bench_loader(console: Console, args: argparse.Namespace) -> None:
    with console.status("loader throughput (generate; rounds of loader, read_csv, SDK parse)"):
        r = loader_throughput.run(OUT, args.users, args.days, args.repeat)
    _save("loader", r)
    table = Table(title=f"Enriched TSV -> DuckDB, {r['events']:,} events ({MACHINE})")
    table.add_column("what")
    table.add_column("events/s", justify="right")
    table.add_column("vs read_csv", justify="right")
    table.add_row("synthetic generator (TSV out)", f"{r['generate_events_per_s']:,.0f}", "")
    table.add_row("loader: file -> parse -> Arrow -> DuckDB", f"{r['loader_events_per_s']:,.0f}",
                  f"{r['loader_vs_read_csv']:.2f}x")  # fmt: skip
    table.add_row("DuckDB read_csv, same columns", f"{r['duckdb_read_csv_events_per_s']:,.0f}",
                  "1.00x")  # fmt: skip
    if "sdk_parse_events_per_s" in r:
        sdk = r["sdk_parse_events_per_s"]
        table.add_row("snowplow-analytics-sdk: parse to dicts only, no load", f"{sdk:,.0f}",
                      f"{r['sdk_vs_read_csv']:.2f}x")  # fmt: skip
    console.print(table)
    rounds = ", ".join(f"{x:.2f}" for x in r["loader_vs_read_csv_rounds"])
    median = r["loader_vs_read_csv"]
    console.print(f"loader vs read_csv, round by round: {rounds} (median {median:.2f})")


def bench_incremental(console: Console, args: argparse.Namespace) -> None:
    with console.status(f"incremental vs full refresh at {args.sizes} events (slow: loads them)"):
        r = incremental.run(OUT, tuple(args.sizes), args.new)
    _save("incremental", r)
    table = Table(title=f"dbt run: incremental vs full refresh ({MACHINE})")
    for column in (
        "history",
        "new",
        "incremental s",
        "full refresh s",
        "ratio",
        "wall: inc / full",
    ):
        table.add_column(column, justify="right")
    for p in r["points"]:
        table.add_row(f"{p['history_events']:,}", f"{p['new_events']:,}",
                      f"{p['incremental_models_s']:.2f}", f"{p['full_refresh_models_s']:.2f}",
                      f"{p['models_ratio']:.3f}",
                      f"{p['incremental_wall_s']:.1f} / {p['full_refresh_wall_s']:.1f}",
                      )  # fmt: skip
    console.print(table)


def bench_collector(console: Console, args: argparse.Namespace) -> None:
    runs = []
    with console.status(f"the disk alone: fsyncs for {args.seconds:.0f} s"):
        disk = collector.disk_probe(args.seconds)
    for rate in (args.rate, None):  # the goal's load, then as fast as it answers
        label = f"{rate:,.0f} events/s" if rate else "as fast as answered"
        with console.status(f"collector under load ({label}) for {args.seconds:.0f} s"):
            runs.append(collector.run(seconds=args.seconds, rate=rate))
    _save("collector", {"disk_alone": disk, "runs": runs})
    plot = OUT / "collector_memory.png"
    collector.plot_memory(runs, plot)
    title = (f"Collector: tp2 batches of {runs[0]['events_per_request']} events over "
             f"{runs[0]['connections']} connections from a second process ({MACHINE})")  # fmt: skip
    table = Table(title=title, caption=f"memory over time: {plot}")
    table.add_column("")
    for r in runs:
        table.add_column(r["load"], justify="right")
    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("events/s acknowledged", lambda r: f"{r['events_per_s']:,.0f}"),
        ("ack p50 / p99 ms", lambda r: f"{r['ack_p50_ms']:.1f} / {r['ack_p99_ms']:.1f}"),
        ("requests over 50 ms", lambda r: f"{r['requests_over_50ms']:,} of {r['requests']:,}"),
        ("spool fsyncs over 50 ms",
         lambda r: f"{r['spool_fsyncs_over_50ms']:,} of {r['spool_fsyncs']:,}"),
        ("loader drain after the load s", lambda r: f"{r['drain_after_load_s']:.1f}"),
        ("RSS MB loader process (steady)", lambda r: "{steady_min:.0f}-{steady_max:.0f}".format(
            **r["rss_mb"]["loader"])),
        ("RSS MB HTTP process (steady)", lambda r: "{steady_min:.0f}-{steady_max:.0f}".format(
            **r["rss_mb"]["http"])),
        ("CPU ms / 1k events: loader, HTTP, client", lambda r: " / ".join(
            f"{sum(r['cpu_ms_per_1k_events'][k].values()):.0f}"
            for k in ("loader", "http", "client"))),
    ]  # fmt: skip
    for name, cell in rows:
        table.add_row(name, *(cell(r) for r in runs))
    console.print(table)
    console.print(
        f"The disk alone, same run: {disk['fsyncs']:,} fsyncs of 3 KB in {disk['seconds']:.0f} s, "
        f"p50 {disk['fsync_p50_ms']:.2f} ms, p99 {disk['fsync_p99_ms']:.1f} ms, max "
        f"{disk['fsync_max_ms']:.0f} ms, {disk['fsyncs_over_50ms']} over 50 ms: each stall holds "
        "every acknowledgement waiting on it."
    )


def bench_kafka(console: Console, args: argparse.Namespace) -> None:
    with console.status(f"a topic of {args.kafka_events:,} events, loaded from Kafka and a file"):
        r = kafka.run(events=args.kafka_events)
    _save("kafka", r)
    title = (f"Kafka topic ({r['partitions']} partitions, Tansu on 127.0.0.1) -> DuckDB, "
             f"{r['events']:,} events ({MACHINE})")  # fmt: skip
    table = Table(title=title, caption=f"median of {r['rounds']} interleaved rounds")
    for column in ("what", "events/s", "vs the file source"):
        table.add_column(column, justify="right" if column != "what" else "left")
    table.add_row("kafka:// source, consumer group (join included) -> DuckDB",
                  f"{r['kafka_events_per_s']:,.0f}", f"{r['kafka_vs_file']:.2f}x")  # fmt: skip
    table.add_row("file: source, the same events -> DuckDB", f"{r['file_events_per_s']:,.0f}",
                  "1.00x")  # fmt: skip
    console.print(table)


def bench_freshness(console: Console, args: argparse.Namespace) -> None:
    users, days = args.fresh_users, args.fresh_days
    with console.status(f"freshness: {users} users x {days} days of history, then streaming"):
        r = freshness.run(
            OUT, users, days, args.fresh_seconds, args.fresh_rate, args.fresh_batch_seconds
        )
    _save("freshness", r)
    title = (f"Freshness while streaming {r['stream_events_per_s']:.0f} events/s "
             f"({r['batch_seconds']:g} s batches) over "
             f"~{r['history_events_approx']:,.0f} events of history, {r['probes']} probes "
             f"({MACHINE})")  # fmt: skip
    table = Table(title=title)
    for column in ("arrival -> visible in", "p50 s", "p95 s", "max s"):
        table.add_column(column, justify="right")
    for name in ("profiles", "segment_membership"):
        table.add_row(name, f"{r[name + '_p50_s']:.2f}", f"{r[name + '_p95_s']:.2f}",
                      f"{r[name + '_max_s']:.2f}")  # fmt: skip
    table.add_row("(one refresh cycle, median)", f"{r['refresh_cycle_s_median']:.2f}", "", "")
    console.print(table)


def bench_rulesets(console: Console, args: argparse.Namespace) -> None:
    with console.status(f"rule-set builds at {args.interactions} interactions"):
        r = rulesets.run(OUT / "rulesets", tuple(args.interactions), args.changed)
    _save("rulesets", r)
    table = Table(title=f"dbt build --selector retrain on DuckDB ({MACHINE})")
    for column in ("interactions", "users", "items", "similarity rows", "models s",
                   "dbt wall s", "floor: one group-by s"):  # fmt: skip
        table.add_column(column, justify="right")
    for p in r["points"]:
        table.add_row(f"{p['interactions']:,}", f"{p['users']:,}", f"{p['items']:,}",
                      f"{p['item_similarity_rows']:,}", f"{p['models_s']:.2f}",
                      f"{p['dbt_wall_s']:.2f}", f"{p['floor_group_by_s']:.2f}")  # fmt: skip
    console.print(table)
    if args.changed is not None:
        table = Table(title="the next retrain: copying unchanged users' lists, or scoring all")
        for column in ("interactions", "new events for", "users copied", "models s: reuse",
                       "models s: everyone", "ratio"):  # fmt: skip
            table.add_column(column, justify="right")
        for p in r["points"]:
            for case, label in (("after_changes", f"{args.changed:.1%} of users"),
                                ("repeats", f"{args.changed:.1%}, their favourites"),
                                ("nothing_new", "nobody")):  # fmt: skip
                u = p["reuse"][case]
                table.add_row(f"{p['interactions']:,}", label,
                              f"{u['reuse']['users_copied']:,} / {u['reuse']['users']:,}",
                              f"{u['reuse']['models_s']:.2f}", f"{u['full']['models_s']:.2f}",
                              f"{u['ratio']:.2f}x")  # fmt: skip
        console.print(table)
    args.udf_warehouse = args.udf_warehouse or r["points"][0]["warehouse"]


def bench_udf(console: Console, args: argparse.Namespace) -> None:
    warehouse = args.udf_warehouse
    if warehouse is None:
        with console.status("a rule set to score against (rulesets at the smallest size)"):
            point = rulesets.run(OUT / "rulesets", (min(args.interactions),))["points"][0]
        warehouse = point["warehouse"]
    with console.status(f"{args.calls} persona_recommend calls through SQL"):
        r = udf.run(Path(warehouse), args.calls)
    _save("udf", r)
    table = Table(title=f"persona_recommend per SQL call, {r['rule_set_pairs']:,} pairs "
                  f"({MACHINE})")  # fmt: skip
    for column in ("what", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    table.add_row("score a live context (UDF)", f"{r['score']['p50_ms']:.2f}",
                  f"{r['score']['p99_ms']:.2f}")  # fmt: skip
    table.add_row("read precomputed top K", f"{r['lookup']['p50_ms']:.2f}",
                  f"{r['lookup']['p99_ms']:.2f}")  # fmt: skip
    console.print(table)


def bench_interventions(console: Console, args: argparse.Namespace) -> None:
    with console.status("interventions: rule evaluation cost, then 1,000 rules end to end"):
        r = interventions.run(OUT)
    _save("interventions", r)
    table = Table(title=f"Rule evaluation per event (the stream engine's observe) ({MACHINE})")
    for column in ("rules", "affected", "observe us/event", "+ interventions us/event"):
        table.add_column(column, justify="right")
    for row in r["evaluation"]:
        table.add_row(f"{row['rules']:,}", f"{row['affected']:,}",
                      f"{row['observe_us_per_event']:.1f}",
                      f"{row['interventions_us_per_event']:.1f}")  # fmt: skip
    console.print(table)
    e = r["end_to_end"]
    table = Table(title=f"Tracker POST -> intervention received, {e['rate']:.0f} events/s, "
                  f"{e['probes']} probes")  # fmt: skip
    for column in ("", "rules", "received", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if column else "left")
    for run in (r["end_to_end"], r["end_to_end_probe_rule_only"]):
        for key, name in (("stream_attribute", "stream attribute read shows it (baseline)"),
                          ("sse", "SSE subscription (goal p95 <= 300 ms)"),
                          ("webhook", "webhook (goal p95 <= 500 ms)")):  # fmt: skip
            x = run[key]
            table.add_row(
                name,
                f"{run['rules']:,}",
                str(x["received"]),
                *(
                    f"{x.get(q, float('nan')):.0f}"
                    for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
                ),
            )
    console.print(table)


def bench_serving(console: Console, args: argparse.Namespace) -> None:
    r = serving.run(
        OUT, users=args.serve_users, days=args.serve_days, seconds=args.serve_seconds,
        rate=args.serve_rate, closed_seconds=args.serve_closed_seconds,
        concurrency=args.serve_concurrency, probes=args.serve_probes,
        profile_probes=args.serve_profile_probes, soak_seconds=args.soak_seconds,
        progress=lambda text: console.log(text),
    )  # fmt: skip
    samples = r.pop("memory_samples")
    _save("serving", r)
    (OUT / "serving_memory.json").write_text(json.dumps(samples))
    names = {"health": "GET /health (floor)", "service_read": "service read",
             "decide": "decide (live scoring)"}  # fmt: skip
    title = (f"python -m serving on {r['warehouse']['events']:,} events "
             f"({r['warehouse']['users']:,} users x {r['warehouse']['days']} days), "
             f"{r['devices']} devices, load from a second process ({MACHINE})")  # fmt: skip
    table = Table(title=title)
    for column in (f"{args.serve_rate:,.0f}/s open loop", "rps", "p50 ms", "p95 ms", "p99 ms",
                   "max ms", f"closed ({args.serve_concurrency}) rps", "its p99"):  # fmt: skip
        table.add_column(column, justify="right" if column else "left")
    for key, name in names.items():
        o, c = r["open_loop"][key], r["closed_loop"][key]
        table.add_row(name, f"{o['achieved_rps']:,.0f}",
                      *(f"{o[q]:.2f}" for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                      f"{c['rps']:,.0f}", f"{c['p99_ms']:.1f}")  # fmt: skip
    console.print(table)
    own = r["decide_in_process"]
    console.print(f"decide in-process, {own['calls']} calls: {own['kept_ms']:.3f} ms a call for "
                  f"a user seen before, {own['first_call_ms']:.3f} ms on a first call")  # fmt: skip
    stream = r["freshness"]["stream"]
    console.print(
        f"Stream attribute freshness (tracker POST -> read shows it), {stream['probes']} "
        f"probes: p50 {stream['visible']['p50_ms']:.0f} ms, p95 "
        f"{stream['visible']['p95_ms']:.0f} ms, max {stream['visible']['max_ms']:.0f} ms "
        f"({stream['misses']} missed; the collector's ack p50 "
        f"{stream['collector_ack']['p50_ms']:.1f} ms)"
    )
    if (profile := r["freshness"]["profile"]) and profile["visible"]:
        console.print(
            f"Profile freshness (tracker POST -> decide shows the new visitor's profile), "
            f"{profile['probes']} probes: p50 {profile['visible']['p50_s']:.2f} s, p95 "
            f"{profile['visible']['p95_s']:.2f} s, max {profile['visible']['max_s']:.2f} s "
            f"({profile['misses']} missed)"
        )
    health = r["health_at_end"]
    console.print(
        f"Refreshes: {health.get('refresh_replays')} replays of dbt's SQL, "
        f"{health.get('refresh_dbt_runs')} dbt runs; the last took "
        f"{health.get('last_refresh_seconds')} s"
    )
    rss = r["rss_mb"]
    loads = [p for p in rss if p.startswith(("open:", "closed:"))]
    console.print(
        "RSS of the live process, MB: " + ", ".join(
            f"{p} {rss[p]['live_min']:.0f}-{rss[p]['live_max']:.0f}" for p in loads
        ) + f"; peak {rss['all']['live_max']:.0f} (the refresh's dbt); collector process "
        f"{rss['all']['collector_max']:.0f}"
    )  # fmt: skip
    if soak := r["soak"]:
        reads = soak["reads"]
        console.print(
            f"Soak {reads['seconds']:.0f} s, 500 events/s + 500 reads/s: reads p50 "
            f"{reads['p50_ms']:.2f} ms, p99 {reads['p99_ms']:.2f} ms, max {reads['max_ms']:.0f}"
            f" ms; {soak['event_requests']['acknowledged'] * soak['events_per_request']:,} "
            f"events acknowledged; RSS MB per minute {soak['rss_mb_per_minute']}"
        )


def bench_refresh(console: Console, args: argparse.Namespace) -> None:
    r = refresh_cycle.run(OUT, users=args.serve_users, days=args.serve_days,
                          cycles=args.refresh_cycles, live_runs=not args.refresh_no_live,
                          progress=lambda text: console.log(text))  # fmt: skip
    _save("refresh", r)
    c = r["cycle"]
    table = Table(title=f"A served refresh cycle in one process: {c['served_models']} models, "
                  f"{c['statements']} statements; median (p90) s ({MACHINE})")  # fmt: skip
    for column in ("", "replay", "sync", "cycle"):
        table.add_column(column, justify="right" if column else "left")
    for label in ("quiet", "busy thread"):
        for way in ("statements", "script"):
            row = c[label][way]
            how = "each statement" if way == "statements" else "a script per model"
            cells = [f"{row[k]['median']:.3f} ({row[k]['p90']:.3f})"
                     for k in ("replay_s", "sync_s", "cycle_s")]  # fmt: skip
            table.add_row(f"{label}: {how}", *cells)
    console.print(table)
    console.print("models, median ms: " + ", ".join(
        f"{name} {ms:.0f}" for name, ms in list(c["quiet"]["models_ms"].items())[:8]))  # fmt: skip
    for name, run in r.get("live", {}).items():
        f, parts = run["freshness_s"], run["refresh_s"]
        shares = ", ".join(f"{k} {parts[k]['median']:.2f} ({parts[k]['p90']:.2f})"
                           for k in parts if parts[k])  # fmt: skip
        console.print(
            f"live, {name}: profile freshness p50 {f['p50_s']:.2f} s, p95 {f['p95_s']:.2f} s, "
            f"max {f['max_s']:.2f} s ({run['misses']} missed); refresh median (p90) s: "
            f"{shares}; snapshots during: {run['snapshots_during']}"
        )


def bench_dashboard(console: Console, args: argparse.Namespace) -> None:
    with console.status("dashboard pages (building the warehouses first if needed)"):
        r = dashboard.run(OUT, tuple(args.dashboard_sizes), args.dashboard_rounds,
                          [Path(w) for w in args.dashboard_warehouses or []])  # fmt: skip
    _save("dashboard", r)
    table = Table(title=f"persona dashboard: server-side render per page, query cache empty, "
                  f"median of {r['rounds']} ({MACHINE})")  # fmt: skip
    table.add_column("page")
    for p in r["points"]:
        table.add_column(f"{p['events']:,} events, s", justify="right")
    for page in dashboard.PAGES:
        table.add_row(page, *(f"{p['pages_s'][page]:.2f}" for p in r["points"]))
    console.print(table)
    base = Table(title="The same answer from the aggregate and from the base model, s")
    for column in ("events", "page", "aggregate", "base model", "base / aggregate"):
        base.add_column(column, justify="right")
    for p in r["points"]:
        for b in p["baselines"]:
            ratio = b["base_s"] / b["aggregate_s"]
            base.add_row(f"{p['events']:,}", b["page"], f"{b['aggregate_s']:.3f}",
                         f"{b['base_s']:.3f}", f"{ratio:.1f}x")  # fmt: skip
    console.print(base)


def bench_forget(console: Console, args: argparse.Namespace) -> None:
    with console.status(f"forget one user at {args.forget_events:,} events, and a full refresh"):
        r = forget.run(OUT, args.forget_events, args.suppression_events, args.repeat)
    _save("forget", r)
    f, s = r["forget"], r["suppression"]
    table = Table(title=f"Forget one user, {f['events']:,} events ({MACHINE})")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_row(
        f"persona forget (the heaviest user: {f['ids_resolved']} ids, "
        f"{f['rows_removed']:,} rows; checkpoint included)",
        f"{f['forget_s']:.2f}",
    )
    table.add_row("  then --compact (rewrite the file)", f"{f['compact_s']:.2f}")
    table.add_row("full refresh of the realtime models", f"{f['full_refresh_s']:.2f}")
    table.add_row("forget / full refresh", f"{f['forget_vs_full_refresh']:.3f}x")
    console.print(table)
    console.print(f"Loader, {s['events']:,} events: {s['events_per_s_none']:,.0f} events/s without "
                  f"suppression, {s['events_per_s_10k']:,.0f} with 10,000 suppressed ids "
                  f"({s['ratio']:.3f}x)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=[
            "all",
            "loader",
            "incremental",
            "collector",
            "kafka",
            "freshness",
            "rulesets",
            "udf",
            "serving",
            "refresh",
            "interventions",
            "dashboard",
            "forget",
        ],
    )
    parser.add_argument("--users", type=int, default=2000, help="loader: synthetic users")
    parser.add_argument("--days", type=int, default=30, help="loader: synthetic days")
    parser.add_argument("--repeat", type=int, default=3, help="loader: rounds (medians)")
    parser.add_argument("--sizes", type=int, nargs=2, default=[2_500_000, 5_000_000],
                        help="incremental: the two history sizes, in events")  # fmt: skip
    parser.add_argument("--new", type=int, default=50_000, help="incremental: new events per run")
    parser.add_argument("--seconds", type=float, default=30, help="collector: each load's length")
    parser.add_argument(
        "--rate", type=float, default=5000, help="collector: the open-loop load, events/s"
    )
    parser.add_argument("--kafka-events", type=int, default=200_000, help="kafka: topic size")
    parser.add_argument("--fresh-users", type=int, default=2000, help="freshness: history users")
    parser.add_argument("--fresh-days", type=int, default=30, help="freshness: history days")
    parser.add_argument("--fresh-seconds", type=float, default=60, help="freshness: stream time")
    parser.add_argument("--fresh-rate", type=float, default=200, help="freshness: events/s")
    parser.add_argument("--fresh-batch-seconds", type=float, default=1.0,
                        help="freshness: the loader's micro-batch time")  # fmt: skip
    parser.add_argument("--interactions", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="rulesets: interaction-log sizes")  # fmt: skip
    parser.add_argument("--changed", type=float,
                        help="rulesets: then new events for this fraction of users (0.01), "
                        "the next retrain with and without reuse")  # fmt: skip
    parser.add_argument("--calls", type=int, default=2000, help="udf: calls timed")
    parser.add_argument("--udf-warehouse", help="udf: a warehouse with a built rule set")
    parser.add_argument("--serve-users", type=int, default=2000, help="serving: warehouse users")
    parser.add_argument("--serve-days", type=int, default=30, help="serving: warehouse days")
    parser.add_argument("--serve-seconds", type=float, default=20,
                        help="serving: each open-loop load's length")  # fmt: skip
    parser.add_argument("--serve-rate", type=float, default=1000,
                        help="serving: the open-loop load, requests/s")  # fmt: skip
    parser.add_argument("--serve-closed-seconds", type=float, default=10,
                        help="serving: each closed-loop load's length")  # fmt: skip
    parser.add_argument("--serve-concurrency", type=int, default=32,
                        help="serving: closed-loop connections")  # fmt: skip
    parser.add_argument("--serve-probes", type=int, default=200,
                        help="serving: stream freshness probes")  # fmt: skip
    parser.add_argument("--serve-profile-probes", type=int, default=20,
                        help="serving: profile freshness probes (0: none)")  # fmt: skip
    parser.add_argument("--soak-seconds", type=float, default=0,
                        help="serving: then 500 events/s + 500 reads/s this long (600: the "
                        "issue's 10 minutes)")  # fmt: skip
    parser.add_argument("--refresh-cycles", type=int, default=10,
                        help="refresh: cycles of each way of replaying")  # fmt: skip
    parser.add_argument("--refresh-no-live", action="store_true",
                        help="refresh: the in-process cycles only, not live")  # fmt: skip
    parser.add_argument("--dashboard-sizes", type=int, nargs="+", default=[200_000, 5_000_000],
                        help="dashboard: warehouse sizes, in events")  # fmt: skip
    parser.add_argument("--dashboard-rounds", type=int, default=3, help="dashboard: rounds")
    parser.add_argument("--dashboard-warehouses", nargs="+",
                        help="dashboard: time these built warehouses instead")  # fmt: skip
    parser.add_argument("--forget-events", type=int, default=5_000_000,
                        help="forget: warehouse size, in events")  # fmt: skip
    parser.add_argument("--suppression-events", type=int, default=300_000,
                        help="forget: events loaded to time the suppression step")  # fmt: skip
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    console = Console()
    if args.which in ("all", "loader"):
        bench_loader(console, args)
    if args.which in ("all", "collector"):
        bench_collector(console, args)
    if args.which in ("all", "kafka"):
        bench_kafka(console, args)
    if args.which in ("all", "freshness"):
        bench_freshness(console, args)
    if args.which in ("all", "incremental"):
        bench_incremental(console, args)
    if args.which in ("all", "rulesets"):
        bench_rulesets(console, args)
    if args.which in ("all", "udf"):
        bench_udf(console, args)
    if args.which in ("all", "serving"):
        bench_serving(console, args)
    if args.which in ("all", "refresh"):
        bench_refresh(console, args)
    if args.which in ("all", "interventions"):
        bench_interventions(console, args)
    if args.which in ("all", "dashboard"):
        bench_dashboard(console, args)
    if args.which in ("all", "forget"):
        bench_forget(console, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The collector under load from a second process on 127.0.0.1.

Two loads, each against a fresh collector (HTTP process + loader process, as users run it):

- ``rate``: an open-loop load at a fixed number of events/s (the goal: 5,000), tp2 batches of
  ``batch`` events sent on a timetable. Latency is measured from when a request was *due*, so a
  stalled server cannot hide its stall by slowing the sender (no coordinated omission).
- ``max``: a closed loop, each connection sending its next request when the last is answered:
  the most the collector acknowledges.

For each: events/s acknowledged, acknowledgement latency p50/p99 (request due → 200 received,
which includes the spool fsync), the resident memory of both server processes sampled four
times a second, CPU time per 1,000 events in each process (the load generator included, since
it shares the two cores), and how long the loader took to drain the spool after the load.

The load generator is a lean asyncio HTTP/1.1 client over keep-alive connections, so that the
cores go to the collector rather than to the client library (``requests`` spent more CPU per
event than the collector's HTTP process did).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from serving.memory import rss_mb

ROOT = Path(__file__).resolve().parents[1]
TP2 = "/com.snowplowanalytics.snowplow/tp2"


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process has used (``/proc/PID/stat``), threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _http_process(loader_pid: int) -> int:
    """The collector's HTTP process: the loader's child that multiprocessing spawned to serve
    (not its resource tracker)."""
    for task in Path(f"/proc/{loader_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                return int(child)
    raise RuntimeError("the collector's HTTP process was not found")


def _fsync_histogram(port: int) -> dict[str, int]:
    """The collector's spool fsync histogram (``le`` → fsyncs that took at most that long)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        text = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
    prefix = 'persona_spool_fsync_seconds_bucket{le="'
    return {
        line[len(prefix) :].split('"')[0]: int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def disk_probe(seconds: float = 20, directory: Path | None = None) -> dict:
    """The disk alone, for comparison: append 3 KB (a tp2 request's records) and fsync, 500
    times a second (the open-loop load's request rate), as the spool would with nothing else
    running. An acknowledgement cannot be faster than the fsync it waits for."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="persona-bench-disk-") as tmp:
        latencies: list[float] = []
        with open(Path(tmp) / "probe", "ab") as fh:
            stop = time.perf_counter() + seconds
            while time.perf_counter() < stop:
                fh.write(b"x" * 3000)
                fh.flush()
                started = time.perf_counter()
                os.fsync(fh.fileno())
                latencies.append(time.perf_counter() - started)
                time.sleep(max(0.0, 0.002 - (time.perf_counter() - started)))
    latencies.sort()
    return {
        "seconds": seconds, "fsyncs": len(latencies),
        "fsync_p50_ms": 1000 * statistics.median(latencies),
        "fsync_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "fsync_max_ms": 1000 * latencies[-1],
        "fsyncs_over_50ms": sum(t > 0.05 for t in latencies),
    }  # fmt: skip


def _body(batch: int) -> bytes:
    now = str(time.time_ns() // 1_000_000)
    event = {"e": "pv", "dtm": now, "stm": now, "aid": "bench", "duid": "d1",
             "url": "https://shop.example.com/p/1"}  # fmt: skip
    return orjson.dumps({
        "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
        "data": [event | {"eid": str(uuid.uuid4())} for _ in range(batch)],
    })  # fmt: skip


async def _load(
    port: int, seconds: float, batch: int, connections: int, rate: float | None
) -> tuple[int, list[tuple[float, float]], int]:
    """(events acknowledged, latencies, requests refused); ``rate`` events/s or as fast as
    the server answers."""
    interval = batch / rate if rate else 0.0
    slots = itertools.count()
    start = time.perf_counter() + 0.05
    stop = start + seconds
    latencies: list[tuple[float, float]] = []  # (when due, seconds to the 200)
    acknowledged = refused = 0

    async def connection() -> None:
        nonlocal acknowledged, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        cookie = f"sp={uuid.uuid4()}"
        while True:
            due = start + next(slots) * interval if rate else time.perf_counter()
            if due >= stop:
                break
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            body = _body(batch)
            writer.write(
                f"POST {TP2} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Cookie: {cookie}\r\nUser-Agent: persona-bench\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                latencies.append((due - start, time.perf_counter() - due))
                acknowledged += batch
            else:
                refused += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return acknowledged, latencies, refused


def _client(port: int, seconds: float, batch: int, connections: int, rate: float | None,
            out: multiprocessing.Queue) -> None:  # fmt: skip
    out.put(asyncio.run(_load(port, seconds, batch, connections, rate)))


def run(
    seconds: float = 30, batch: int = 10, connections: int = 16, rate: float | None = 5000
) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="persona-bench-collector-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "loader", "--source", f"http://127.0.0.1:{port}",
         "--sink", f"duckdb:{work / 'w.duckdb'}", "--spool", str(work / "spool"), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start: {server.stderr.read()}") from None
            time.sleep(0.1)
    pids = {"loader": server.pid, "http": _http_process(server.pid)}
    out: multiprocessing.Queue = multiprocessing.Queue()
    client = multiprocessing.Process(
        target=_client, args=(port, seconds, batch, connections, rate, out)
    )
    cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    memory: list[tuple[float, float, float]] = []  # (seconds, loader MB, http MB)
    started = time.perf_counter()
    client.start()
    while True:  # read the result while the client runs: a full pipe would block its exit
        memory.append((time.perf_counter() - started, *(rss_mb(p) for p in pids.values())))
        try:
            events, timeline, refused = out.get(timeout=0.25)
            break
        except queue.Empty:
            if not client.is_alive():
                raise RuntimeError("the load generator died without a result") from None
    cpu = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    cpu["client"] = _cpu_seconds(client.pid)  # before join: a reaped process has no /proc entry
    cpu_before["client"] = (0.0, 0.0)
    client.join()
    elapsed = time.perf_counter() - started
    fsync = _fsync_histogram(port)
    stopping = time.perf_counter()
    server.terminate()  # SIGTERM: stop accepting, drain the spool, commit, exit
    stdout, _ = server.communicate(timeout=300)
    drain_seconds = time.perf_counter() - stopping
    latencies = sorted(latency for _, latency in timeline)
    steady = [m for m in memory if m[0] >= min(10.0, seconds / 3)]  # after the warm-up
    rss = {
        name: {"start": memory[0][i], "steady_min": min(m[i] for m in steady),
               "steady_max": max(m[i] for m in steady), "peak": max(m[i] for m in memory)}
        for i, name in ((1, "loader"), (2, "http"))
    }  # fmt: skip
    return {
        "load": f"open loop at {rate:,.0f} events/s" if rate else "closed loop",
        "seconds": elapsed, "events_acknowledged": events, "events_per_s": events / elapsed,
        "requests": len(latencies), "requests_refused": refused, "events_per_request": batch,
        "connections": connections,
        "ack_p50_ms": 1000 * statistics.median(latencies),
        "ack_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "ack_max_ms": 1000 * latencies[-1],
        "rss_mb": rss,
        "memory_samples": memory,
        "requests_over_50ms": sum(lat > 0.05 for _, lat in timeline),
        "seconds_with_requests_over_50ms": sorted({int(t) for t, lat in timeline if lat > 0.05}),
        "cpu_ms_per_1k_events": {
            name: {kind: 1e6 * (cpu[name][i] - cpu_before[name][i]) / max(events, 1)
                   for i, kind in enumerate(("user", "system"))}
            for name in cpu
        },
        "drain_after_load_s": drain_seconds,
        # the disk under the spool: an acknowledgement waits for its group's fsync
        "spool_fsyncs": fsync["+Inf"], "spool_fsyncs_over_50ms": fsync["+Inf"] - fsync["0.05"],
        "spool_fsyncs_over_250ms": fsync["+Inf"] - fsync["0.25"],
        "loader_summary": stdout.strip().splitlines()[-1],
    }  # fmt: skip


def plot_memory(runs: list[dict], out: Path) -> None:
    """Resident memory of both server processes over each load: flat is the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for r, style in zip(runs, ("-", "--"), strict=False):
        t = [m[0] for m in r["memory_samples"]]
        for i, name in ((1, "loader process"), (2, "HTTP process")):
            ax.plot(t, [m[i] for m in r["memory_samples"]], style, label=f"{name}, {r['load']}")
    ax.set_xlabel("seconds under load")
    ax.set_ylabel("resident MB")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Collector memory under load")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    result = run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 10)
    result.pop("memory_samples")
    print(json.dumps(result, indent=2))

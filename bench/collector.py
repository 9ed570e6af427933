"""The collector under load from a second process on 127.0.0.1: events/s acknowledged, the
acknowledgement latency (request sent → 200 received, which includes the spool fsync), and
the server's memory before and after. A load generator in another process posts tp2 batches
from several threads, as a fleet of trackers would."""

from __future__ import annotations

import json
import multiprocessing
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (the collector's HTTP process)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _rss_mb(int(child))
    except FileNotFoundError:  # gone meanwhile
        pass
    return total


def _client(url: str, seconds: float, batch: int, threads: int, out: multiprocessing.Queue) -> None:
    latencies: list[float] = []
    sent = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        n = 0
        while time.monotonic() < stop:
            now = str(int(time.time() * 1000))
            event = {"e": "pv", "dtm": now, "stm": now, "aid": "bench", "duid": "d1",
                     "url": "https://shop.example.com/p/1"}  # fmt: skip
            body = {
                "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                "data": [event | {"eid": str(uuid.uuid4())} for _ in range(batch)],
            }
            started = time.perf_counter()
            response = session.post(url, json=body, timeout=10)
            if response.status_code == 200:
                mine.append(time.perf_counter() - started)
                n += batch
        with lock:
            latencies.extend(mine)
            sent[0] += n

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((sent[0], latencies))


def run(seconds: float = 20, batch: int = 10, threads: int = 8) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="persona-bench-collector-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "loader", "--source", f"http://127.0.0.1:{port}",
         "--sink", f"duckdb:{work / 'w.duckdb'}", "--spool", str(work / "spool"), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{base}/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    rss_before = _rss_mb(server.pid)
    out: multiprocessing.Queue = multiprocessing.Queue()
    client = multiprocessing.Process(
        target=_client,
        args=(f"{base}/com.snowplowanalytics.snowplow/tp2", seconds, batch, threads, out),
    )
    started = time.perf_counter()
    client.start()
    mid_rss = []
    while True:  # read the result while the client runs: a full pipe would block its exit
        mid_rss.append(_rss_mb(server.pid))
        try:
            events, latencies = out.get(timeout=1)
            break
        except queue.Empty:
            if not client.is_alive():
                raise RuntimeError("the load generator died without a result") from None
    client.join()
    elapsed = time.perf_counter() - started
    rss_after = _rss_mb(server.pid)
    server.terminate()
    stdout, _ = server.communicate(timeout=120)
    latencies.sort()
    return {
        "seconds": elapsed, "events_acknowledged": events, "events_per_s": events / elapsed,
        "requests": len(latencies), "events_per_request": batch, "client_threads": threads,
        "ack_p50_ms": 1000 * statistics.median(latencies),
        "ack_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "server_rss_mb_start": rss_before, "server_rss_mb_peak": max(mid_rss, default=rss_after),
        "server_rss_mb_end": rss_after, "loader_summary": stdout.strip().splitlines()[-1],
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 10), indent=2))

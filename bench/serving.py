"""The live process (``python -m serving``, as users run it) under load from a second process.

A demo-sized warehouse (the synthetic shop, 2,000 users x 30 days by default, loaded and built
by dbt as ``make demo`` does) is built once into ``bench/out/serving/`` and copied for each
run. The live process serves it with ``serving/attributes.yml``'s stream groups and service
(``personalization``); before the load, a few hundred of the warehouse's own devices (with
profiles, segments and recommendations) each send a session through the collector: a page view
and two product views, so that their stream attributes and ``decide``'s session are not empty.

Then, from a second process (a lean asyncio HTTP/1.1 client over keep-alive connections, as in
``bench/collector.py``; latency is measured from when each request was *due*, so a stalled
server cannot hide its stall by slowing the sender):

- open loop at ``rate`` requests/s for ``seconds``: ``GET /health`` (the HTTP floor of the same
  server and client: the anchor), a service read (``POST /api/v1/get-online-attributes`` with
  ``{"service", "attribute_keys": {"domain_userid": [id]}}``, the body the Signals SDK's
  ``get_service_attributes`` sends) and ``POST /v1/decide`` with live scoring (a device with a
  session of product views, plus an item on screen);
- closed loop (``concurrency`` connections, each sending when answered): saturation throughput;
- freshness: from the tracker's POST to the collector until a stream attribute read reflects
  the event (each probe a new device, polled by a reader every ``POLL`` s), and until its
  profile does (one dbt refresh cycle, fewer probes);
- memory: the live process's resident set (and the collector's HTTP process's), sampled four
  times a second throughout; optionally a soak (``soak_seconds``) at 500 events/s + 500
  reads/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from serving.memory import rss_mb

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-" + "x" * 32
TP2 = "/com.snowplowanalytics.snowplow/tp2"
ECOM = "com.snowplowanalytics.snowplow.ecommerce"
ACTION = f"iglu:{ECOM}/snowplow_ecommerce_action/jsonschema/1-0-2"
PRODUCT = f"iglu:{ECOM}/product/jsonschema/1-0-0"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
# not a bot: the models leave bots out of profiles
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)
SERVICE = "personalization"  # serving/attributes.yml's
FIELDS = ["lifecycle_stage", "rfm_segment"]
POLL = 0.002  # the freshness reader's polling interval, seconds


# --- the warehouse, built once
def build_warehouse(work: Path, users: int, days: int) -> Path:
    """``work/warehouse-USERSxDAYS.duckdb``: the synthetic shop loaded, dbt's models built
    (``as_of: latest_event``) and a rule set retrained, as ``make demo`` does. Reused when
    there."""
    warehouse = work / f"warehouse-{users}x{days}.duckdb"
    done = warehouse.with_suffix(".built")
    if warehouse.exists() and done.exists():
        return warehouse
    from dbt.cli.main import dbtRunner

    from loader import pipeline
    from loader.sinks.duckdb import DuckDBSink
    from loader.sources.synthetic import SyntheticConfig, SyntheticSource
    from recs.dbt_invoke import environment, failures

    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob(f"{warehouse.name}*"):
        stale.unlink()
    sink = DuckDBSink(warehouse)
    pipeline.run(SyntheticSource(SyntheticConfig(users=users, days=days, seed=0)), sink,
                 batch_rows=50_000)  # fmt: skip
    sink.close()
    dbt = work / "dbt"
    dbt.mkdir(exist_ok=True)
    shutil.copy(ROOT / "profiles.example.yml", dbt / "profiles.yml")
    common = ["--project-dir", str(ROOT), "--profiles-dir", str(dbt), "--target-path",
              str(dbt / "target"), "--log-path", str(dbt / "logs"), "--quiet",
              "--exclude-resource-type", "test", "unit_test"]  # fmt: skip
    env = {"PERSONA_DUCKDB": str(warehouse), "PERSONA_TARGET": "duckdb",
           "PERSONA_SCHEMA": "derived"}  # fmt: skip
    with environment(env):
        for args in (["build", "--vars", "{as_of: latest_event}"],
                     ["build", "--selector", "retrain"]):  # fmt: skip
            result = dbtRunner().invoke([*args, *common])
            if not result.success:
                raise RuntimeError(f"dbt {' '.join(args)} failed: {failures(result)}")
    import duckdb

    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
    done.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return warehouse


def built_warehouse(work: Path, users: int, days: int) -> Path:
    """``build_warehouse`` in a process of its own: dbt in this process would keep the file
    open, and the live process must open it."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(build_warehouse, (work, users, days))


def pick_ids(warehouse: Path, devices: int) -> tuple[list[tuple[str, str]], list[str], int]:
    """(device, user) pairs of the warehouse with a profile, segments and recommendations; the
    products with the most neighbours in the served rule set; the events loaded."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        pairs = con.execute(
            "select m.device_id, any_value(m.user_id) from derived.identity_map m "
            "join derived.segment_membership s using (user_id) "
            "join derived.current_user_recommendations r using (user_id) "
            "where m.device_id_type = 'domain_userid' group by 1 order by hash(m.device_id) "
            "limit ?",
            [devices],
        ).fetchall()
        products = [r[0] for r in con.execute(
            "select product_id from derived.current_item_similarity group by 1 "
            "order by count(*) desc, 1 limit 200").fetchall()]  # fmt: skip
        events = con.execute("select count(*) from atomic.events").fetchone()[0]
    return [(d, u) for d, u in pairs], products, events


def decide_in_process(warehouse: Path, devices: list[str], products: list[str],
                      rounds: int = 5) -> dict:  # fmt: skip
    """What one ``decide`` costs without HTTP: an ``Api`` over an in-process store synced from
    the warehouse, each device asked three times with an item on screen (the best of
    ``rounds``), for a user seen before (their affinities kept scored) and on a user's first
    call (the kept scores cleared before each)."""
    import duckdb

    from serving.batch import BatchSync
    from serving.service import Api, new_registry
    from serving.stores import open_store
    from serving.stream import StreamEngine

    store = open_store("memory")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        BatchSync(store).sync(con.cursor())
    registry = new_registry()
    engine = StreamEngine(store)
    engine.set_groups(registry.stream_groups())
    api = Api(registry, store, engine)
    rng = random.Random(1)
    requests = [{"domain_userid": d, "fields": FIELDS, "items": [rng.choice(products)], "k": 10}
                for d in devices] * 3  # fmt: skip

    def best(clear: bool) -> float:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            for request in requests:
                if clear:
                    api._kept.clear()
                api.decide(request)
            times.append((time.perf_counter() - started) / len(requests))
        return round(1000 * min(times), 4)

    best(False)  # warm: the rule set parsed, the scores kept
    return {"calls": len(requests), "kept_ms": best(False), "first_call_ms": best(True)}


# --- HTTP/1.1 requests as bytes, and a lean keep-alive client
def post(path: str, body: Any, *, token: bool = True, headers: str = "") -> bytes:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    auth = f"Authorization: Bearer {TOKEN}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data  # fmt: skip


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def service_read(device: str) -> bytes:
    """What ``SignalsSandbox.get_service_attributes(name, "domain_userid", id)`` sends."""
    body = {"service": SERVICE, "attribute_keys": {"domain_userid": [device]}}
    return post("/api/v1/get-online-attributes", body)


def decide(device: str, item: str) -> bytes:
    return post("/v1/decide", {"domain_userid": device, "fields": FIELDS, "items": [item],
                               "k": 10})  # fmt: skip


def stream_read(device: str) -> bytes:
    body = {"attributes": ["recent_activity_v1:page_views_last_hour"],
            "attribute_keys": {"domain_userid": [device]}}  # fmt: skip
    return post("/api/v1/get-online-attributes", body)


def tp2(events: list[dict[str, str]]) -> bytes:
    """A tp2 POST as the JavaScript tracker sends it (browser user agent, ``sp`` cookie)."""
    body = {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
            "data": events}  # fmt: skip
    cookie = f"Cookie: sp={uuid.uuid4()}\r\nUser-Agent: {BROWSER}\r\n"
    return post(TP2, body, token=False, headers=cookie)


def visit(device: str, session: str, products: list[str]) -> list[dict[str, str]]:
    """A page view, then a product view of each of ``products``, stamped now."""
    page = {"schema": WEB_PAGE, "data": {"id": str(uuid.uuid4())}}
    now = str(time.time_ns() // 1_000_000)
    common = {"dtm": now, "stm": now, "p": "web", "tv": "js-4.6.0", "aid": "bench",
              "duid": device, "sid": session, "vid": "1", "res": "1920x1080",
              "url": "https://shop.persona.dev/"}  # fmt: skip

    def contexts(*entities: dict) -> str:
        return json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/"
                           "jsonschema/1-0-1", "data": [*entities, page]})  # fmt: skip

    events = [common | {"e": "pv", "eid": str(uuid.uuid4()), "co": contexts()}]
    for item in products:
        action = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                  "data": {"schema": ACTION, "data": {"type": "product_view"}}}  # fmt: skip
        product = {"schema": PRODUCT, "data": {"id": item, "category": "bench", "price": 10.0,
                                               "currency": "EUR"}}  # fmt: skip
        events.append(
            common
            | {
                "e": "ue",
                "eid": str(uuid.uuid4()),
                "ue_pr": json.dumps(action),
                "co": contexts(product),
                "url": f"https://shop.persona.dev/p/{item}",
            }
        )
    return events


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(head[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {}

    def q(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": 1000 * ordered[-1],
            "mean_ms": 1000 * statistics.fmean(ordered)}  # fmt: skip


async def open_loop(port: int, requests: list[bytes], rate: float, seconds: float,
                    connections: int = 32, window: float = 0) -> dict:  # fmt: skip
    """``rate`` requests/s on a timetable, over ``connections`` keep-alive connections: each
    takes the next due request when it is free. Latency from when it was due (and, to tell the
    client's lateness apart, from when it was sent). ``window``: also per window of that many
    seconds (by when due)."""
    conns = [await Conn.open(port) for _ in range(connections)]
    slots = itertools.count()
    start = time.perf_counter() + 0.05
    stop = start + seconds
    from_due: list[float] = []
    from_send: list[float] = []
    late: list[float] = []
    timeline: list[tuple[float, float]] = []
    errors: dict[int, int] = {}
    last = start

    async def worker(conn: Conn) -> None:
        nonlocal last
        while (due := start + next(slots) / rate) < stop:
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            sent = time.perf_counter()
            status, _ = await conn.request(requests[len(from_due) % len(requests)])
            last = done = time.perf_counter()
            if status == 200:
                from_due.append(done - due)
                from_send.append(done - sent)
                late.append(sent - due)
                if window:
                    timeline.append((due - start, done - due))
            else:
                errors[status] = errors.get(status, 0) + 1

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    windows = [
        {"from_s": w * window, **_summary([lat for t, lat in timeline if int(t // window) == w])}
        for w in range(int(seconds // window))
    ] if window else []  # fmt: skip
    return {"load": f"open loop, {rate:,.0f} requests/s", "rate": rate, "seconds": seconds,
            "connections": connections, "requests": len(from_due), "errors": errors,
            "achieved_rps": len(from_due) / (last - start), **_summary(from_due),
            "from_send": _summary(from_send),
            "client_late": _summary(late), "windows": windows}  # fmt: skip


async def closed_loop(port: int, requests: list[bytes], seconds: float,
                      concurrency: int) -> dict:  # fmt: skip
    """``concurrency`` connections, each sending its next request when the last is answered."""
    conns = [await Conn.open(port) for _ in range(concurrency)]
    start = time.perf_counter()
    stop = start + seconds
    latencies: list[float] = []
    errors: dict[int, int] = {}

    async def worker(conn: Conn, offset: int) -> None:
        i = offset
        while (sent := time.perf_counter()) < stop:
            status, _ = await conn.request(requests[i % len(requests)])
            i += concurrency
            if status == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                errors[status] = errors.get(status, 0) + 1

    await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return {"load": f"closed loop, {concurrency} connections", "concurrency": concurrency,
            "seconds": elapsed, "requests": len(latencies), "errors": errors,
            "rps": len(latencies) / elapsed, **_summary(latencies)}  # fmt: skip


async def stream_freshness(api: int, collector: int, probes: int) -> dict:
    """Each probe a new device's page view POSTed to the collector; a reader polls its
    ``recent_activity_v1:page_views_last_hour`` from the moment the POST is sent until it is 1."""
    sender, reader = await Conn.open(collector), await Conn.open(api)
    seen: list[float] = []
    acked: list[float] = []
    misses = 0
    for _ in range(probes):
        device = str(uuid.uuid4())
        body, read = tp2(visit(device, str(uuid.uuid4()), [])), stream_read(device)
        started = time.perf_counter()

        async def send(body: bytes = body, started: float = started) -> None:
            status, _ = await sender.request(body)
            if status == 200:
                acked.append(time.perf_counter() - started)

        sending = asyncio.create_task(send())
        while True:
            status, answer = await reader.request(read)
            if status == 200 and orjson.loads(answer)["page_views_last_hour"][0] >= 1:
                seen.append(time.perf_counter() - started)
                break
            if time.perf_counter() - started > 10:
                misses += 1
                break
            await asyncio.sleep(POLL)
        await sending
        await asyncio.sleep(random.uniform(0.02, 0.08))
    sender.close()
    reader.close()
    return {"probes": probes, "misses": misses, "poll_s": POLL, "visible": _summary(seen),
            "collector_ack": _summary(acked)}  # fmt: skip


async def profile_freshness(api: int, collector: int, probes: int, every: float) -> dict:
    """Each probe a new device's visit (a page view, a product view) POSTed to the collector,
    ``every`` seconds apart; each polled by ``decide`` until its profile is known (the refresh
    loop's dbt cycle, then the batch sync)."""
    sender = await Conn.open(collector)

    async def probe(i: int, product: str) -> float | None:
        await asyncio.sleep(i * every)
        reader = await Conn.open(api)
        device = str(uuid.uuid4())
        read = post("/v1/decide", {"domain_userid": device, "fields": FIELDS})
        started = time.perf_counter()
        await sender.request(tp2(visit(device, str(uuid.uuid4()), [product])))
        try:
            while time.perf_counter() - started < 90:
                status, answer = await reader.request(read)
                if status == 200 and orjson.loads(answer)["profile"]["known"]:
                    return time.perf_counter() - started
                await asyncio.sleep(0.02)
            return None
        finally:
            reader.close()

    results = await asyncio.gather(*(probe(i, "sku-0001") for i in range(probes)))
    sender.close()
    seen = [r for r in results if r is not None]
    return {"probes": probes, "misses": probes - len(seen), "every_s": every,
            "visible": {k.replace("_ms", "_s"): v / 1000 for k, v in _summary(seen).items()},
            "each_s": [round(r, 3) if r is not None else None for r in results]}  # fmt: skip


async def soak(api: int, collector: int, reads: list[bytes], devices: list[str],
               products: list[str], seconds: float, read_rate: float,
               event_rate: float) -> dict:  # fmt: skip
    """Reads (service reads and decides of the warehouse's devices, alternating) and events at
    the same time, both open loop; read latency per 10-second window. The events: tp2 POSTs of
    a page view and four product views from a crowd of ``VISITORS`` devices (and now and then
    one of the warehouse's), each in one session for the soak. The crowd is seen once first
    (``_arrive``), so the soak measures a steady state: the stream keys stay as many, and
    memory that grows is a leak, not visitors."""
    batch = 5
    rng = random.Random(1)
    crowd = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(VISITORS)]
    arrived = await _arrive(collector, crowd)
    events_task = asyncio.create_task(
        _events(collector, devices, crowd, products, seconds, event_rate / batch)
    )
    result = await open_loop(api, reads, read_rate, seconds, connections=32, window=10)
    sent = await events_task
    return {"reads": result, "event_requests": sent, "events_per_request": batch,
            "visitors": VISITORS, "crowd_arrival_s": arrived}  # fmt: skip


VISITORS = 20_000  # the soak's crowd of devices
KNOWN_SHARE = 0.02  # of the soak's event requests, from the warehouse's own devices


def _session(device: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{device}-soak"))


async def _arrive(port: int, crowd: list[str], per_request: int = 25) -> float:
    """A page view from each of the crowd in its soak session, ``per_request`` visitors a
    POST (a tp2 body may hold several devices' events), as fast as the collector takes them."""
    conn = await Conn.open(port)
    started = time.perf_counter()
    for start in range(0, len(crowd), per_request):
        events = [visit(d, _session(d), [])[0] for d in crowd[start : start + per_request]]
        status, answer = await conn.request(tp2(events))
        if status != 200:
            raise RuntimeError(f"the collector answered {status}: {answer[:200]!r}")
    conn.close()
    return round(time.perf_counter() - started, 2)


async def _events(port: int, devices: list[str], crowd: list[str], products: list[str],
                  seconds: float, rate: float) -> dict:  # fmt: skip
    conns = [await Conn.open(port) for _ in range(4)]
    slots = itertools.count()
    start = time.perf_counter() + 0.05
    stop = start + seconds
    acked = errors = 0
    rng = random.Random(1)

    async def worker(conn: Conn) -> None:
        nonlocal acked, errors
        while (due := start + next(slots) / rate) < stop:
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            device = rng.choice(devices if rng.random() < KNOWN_SHARE else crowd)
            status, _ = await conn.request(tp2(visit(device, _session(device),
                                                     rng.sample(products, 4))))  # fmt: skip
            if status == 200:
                acked += 1
            else:
                errors += 1

    await asyncio.gather(*(worker(c) for c in conns))
    return {"acknowledged": acked, "errors": errors}


def _client(job: str, kwargs: dict, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    coroutine = {"open": open_loop, "closed": closed_loop, "stream": stream_freshness,
                 "profile": profile_freshness, "soak": soak, "warm": warm}[job]  # fmt: skip
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        result = asyncio.run(coroutine(**kwargs))
        wall = time.perf_counter() - wall
        # the load generator's own share of the cores (it shares them with the live process)
        result["client_cores"] = round((time.process_time() - cpu) / wall, 3)
        out.put(("ok", result))
    except BaseException as exc:
        out.put(("error", repr(exc)))


async def warm(api: int, collector: int, devices: list[str], products: list[str]) -> dict:
    """Each device a session through the collector: a page view and two product views."""
    conn = await Conn.open(collector)
    rng = random.Random(0)
    started = time.perf_counter()
    sessions = {}
    for device in devices:
        sessions[device] = str(uuid.uuid4())
        status, answer = await conn.request(
            tp2(visit(device, sessions[device], rng.sample(products, 2)))
        )
        if status != 200:
            raise RuntimeError(f"the collector answered {status}: {answer[:200]!r}")
    conn.close()
    reader = await Conn.open(api)
    last = devices[-1]
    while True:  # the last device's session is in the stream attributes
        status, answer = await reader.request(decide(last, products[0]))
        if status == 200 and orjson.loads(answer)["session"]["items"]:
            break
        if time.perf_counter() - started > 60:
            raise RuntimeError("the warm-up sessions did not reach the stream attributes")
        await asyncio.sleep(0.05)
    reader.close()
    return {"devices": len(devices), "seconds": time.perf_counter() - started}


# --- the live process, and its memory
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, threads included."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of every core, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _collector_pid(pid: int) -> int | None:
    for child in _children(pid):
        with contextlib.suppress(FileNotFoundError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    return None


class Live:
    """``python -m serving`` on a copy of the warehouse; RSS sampled every 0.25 s with the
    current phase's name."""

    def __init__(self, work: Path, warehouse: Path, flags: list[str]) -> None:
        run = work / "run"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        self.warehouse = run / "warehouse.duckdb"
        shutil.copy(warehouse, self.warehouse)
        self.api, self.collector = _free_port(), _free_port()
        self.log = run / "serving.log"
        env = {**os.environ, "PERSONA_API_TOKEN": TOKEN, "PERSONA_DUCKDB": str(self.warehouse)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--source", f"http://127.0.0.1:{self.collector}",
             "--listen", f"127.0.0.1:{self.api}", "--state-dir", str(run / "state"),
             "--spool", str(run / "spool"), *flags],
            cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.phase = "start"
        self.samples: list[tuple[float, str, float, float]] = []  # (s, phase, live, collector)
        # per phase: CPU seconds of the live process, machine busy and total jiffies
        self.cpu: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self.started = time.perf_counter()
        self.collector_pid: int | None = None
        self._last: tuple[float, float, float] | None = None
        # (s, phase, /health's memory: the process's own account of DuckDB and the state)
        self.accounts: list[tuple[float, str, dict]] = []
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        ticks = 0
        while not self._stop.wait(0.25):
            ticks += 1
            if ticks % 40 == 0:  # every 10 s
                with contextlib.suppress(OSError, ValueError, IndexError):
                    self.accounts.append((time.perf_counter() - self.started, self.phase,
                                          self.health().get("memory") or {}))  # fmt: skip
            if self.collector_pid is None:
                self.collector_pid = _collector_pid(self.proc.pid)
            collector = rss_mb(self.collector_pid) if self.collector_pid else 0.0
            self.samples.append((time.perf_counter() - self.started, self.phase,
                                 rss_mb(self.proc.pid), collector))  # fmt: skip
            live, (busy, total) = _cpu_s(self.proc.pid), _machine_cpu()
            if self._last is not None:
                phase, (live0, busy0, total0) = self.phase, self._last
                acc = self.cpu.setdefault(phase, [0.0, 0.0, 0.0, 0.0])
                acc[0] += live - live0
                acc[1] += busy - busy0
                acc[2] += total - total0
                acc[3] += 0.25
            self._last = (live, busy, total)

    def gc(self) -> dict:
        """The live process's collector account (serving/memory.py GcPauses)."""
        return (self.health().get("memory") or {}).get("gc") or {}

    def health(self) -> dict:
        with socket.create_connection(("127.0.0.1", self.api), timeout=5) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b"".join(iter(lambda: conn.recv(65536), b""))
        return orjson.loads(raw.split(b"\r\n\r\n", 1)[1])

    def wait_serving(self, timeout: float = 180) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serving exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.health()
                with socket.create_connection(("127.0.0.1", self.collector), timeout=1):
                    return time.perf_counter() - self.started
            time.sleep(0.1)
        raise RuntimeError(f"serving did not answer in {timeout} s: {self.log.read_text()}")

    def wait_quiet(self, refreshes: int, snapshots: int, timeout: float = 120) -> dict:
        """Until the refresh loop has caught up (``refreshes``) and the snapshot holds it:
        then nothing runs in the live process but the API (no events arrive meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health()
            if (health.get("refreshes", 0) >= refreshes
                    and health.get("snapshots", snapshots) >= snapshots):  # fmt: skip
                return health
            time.sleep(0.25)
        raise RuntimeError(f"the live process did not settle in {timeout} s: {self.health()}")

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_use(self) -> dict[str, dict[str, float]]:
        """Per phase: cores the live process used, and how busy the machine's cores were (all
        processes: the live one, the load generator, anyone else's work)."""
        cores = os.cpu_count() or 1
        return {phase: {"live_process_cores": round(live / max(wall, 1e-9), 3),
                        "machine_busy_pct": round(100 * busy / max(total, 1), 1),
                        "machine_cores": cores}
                for phase, (live, busy, total, wall) in self.cpu.items()}  # fmt: skip

    def rss(self, phases: list[str] | None = None) -> dict:
        rows = [s for s in self.samples if phases is None or s[1] in phases]
        if not rows:
            return {}
        return {"live_start": rows[0][2], "live_end": rows[-1][2],
                "live_min": min(r[2] for r in rows), "live_max": max(r[2] for r in rows),
                "collector_max": max(r[3] for r in rows)}  # fmt: skip


def _minutes(rows: list[tuple]) -> list[list[tuple]]:
    """``rows`` (time first) in whole minutes from the first."""
    out: list[list[tuple]] = []
    for row in rows:
        minute = int((row[0] - rows[0][0]) // 60)
        while len(out) <= minute:
            out.append([])
        out[minute].append(row)
    return [m for m in out if m]


def _gc_between(before: dict, after: dict, since: float) -> dict:
    """What the collector cost the live process during a phase: collections and their time
    per generation, and each pause of 5 ms or more as (generation, ms)."""
    gens = {g: {k: round(after[g][k] - before[g][k], 1) for k in ("count", "total_ms")}
            for g in ("gen0", "gen1", "gen2") if g in before and g in after}  # fmt: skip
    return {**gens, "long_pauses": [[g, ms] for t, g, ms in after.get("long", []) if t >= since]}


def _in_client(job: str, **kwargs: Any) -> dict:
    """Run one job in a second process (spawned: a clean interpreter) and return its result."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_client, args=(job, kwargs, out))
    proc.start()
    while True:
        try:
            status, result = out.get(timeout=0.5)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"the load generator died running {job}") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"the load generator failed running {job}: {result}")
    return result


def run(out: Path, *, users: int = 2000, days: int = 30, seconds: float = 20,
        rate: float = 1000, closed_seconds: float = 10, concurrency: int = 32,
        devices: int = 300, probes: int = 200, profile_probes: int = 20,
        soak_seconds: float = 0, progress: Any = print) -> dict:  # fmt: skip
    work = out / "serving"
    started = time.perf_counter()
    progress(f"warehouse: {users} users x {days} days (built once into {work})")
    warehouse = built_warehouse(work, users, days)
    build_s = time.perf_counter() - started
    pairs, products, events = pick_ids(warehouse, devices)
    ids = [d for d, _ in pairs]
    progress("decide in-process, without HTTP: a user seen before, and a first call")
    in_process = decide_in_process(warehouse, ids, products)
    progress(f"starting python -m serving on {warehouse.name} ({events:,} events)")
    live = Live(work, warehouse, [])
    try:
        start_s = live.wait_serving()
        live.phase = "warm-up"
        progress(f"warm-up: a session for each of {len(ids)} devices, then the refresh")
        warmed = _in_client("warm", api=live.api, collector=live.collector, devices=ids,
                            products=products)  # fmt: skip
        # the warm-up refreshed, and a snapshot was published (at start): the next copy comes
        # when its share of the time allows (serving/snapshot.py), during the loads or not, as
        # it would in production
        settled = live.wait_quiet(refreshes=1, snapshots=1)
        rng = random.Random(2)
        bodies = {
            "health": [get("/health")],
            "service_read": [service_read(d) for d in ids],
            "decide": [decide(d, rng.choice(products)) for d in ids],
        }
        opened: dict[str, dict] = {}
        for name, requests in bodies.items():
            live.phase = f"open:{name}"
            progress(f"open loop, {rate:,.0f} requests/s for {seconds:g} s: {name}")
            before, since = live.gc(), time.time()
            opened[name] = _in_client("open", port=live.api, requests=requests, rate=rate,
                                      seconds=seconds)  # fmt: skip
            opened[name]["gc"] = _gc_between(before, live.gc(), since)
        closed: dict[str, dict] = {}
        for name, requests in bodies.items():
            live.phase = f"closed:{name}"
            progress(f"closed loop, {concurrency} connections for {closed_seconds:g} s: {name}")
            before, since = live.gc(), time.time()
            closed[name] = _in_client("closed", port=live.api, requests=requests,
                                      seconds=closed_seconds, concurrency=concurrency)  # fmt: skip
            closed[name]["gc"] = _gc_between(before, live.gc(), since)
        live.phase = "freshness:stream"
        progress(f"freshness: {probes} events, each polled until a stream attribute shows it")
        stream = _in_client("stream", api=live.api, collector=live.collector, probes=probes)
        profile = None
        if profile_probes:
            live.phase = "freshness:profile"
            progress(f"freshness: {profile_probes} visits, each polled until its profile shows")
            profile = _in_client("profile", api=live.api, collector=live.collector,
                                 probes=profile_probes, every=0.7)  # fmt: skip
        soaked = None
        if soak_seconds:
            live.phase = "soak"
            progress(f"soak: 500 events/s + 500 reads/s for {soak_seconds:g} s")
            reads = [r for pair in zip(bodies["service_read"], bodies["decide"], strict=True)
                     for r in pair]  # fmt: skip
            soaked = _in_client("soak", api=live.api, collector=live.collector, reads=reads,
                                devices=ids, products=products, seconds=soak_seconds,
                                read_rate=500, event_rate=500)  # fmt: skip
            soak_rows = [s for s in live.samples if s[1] == "soak"]
            soaked["rss_mb_per_minute"] = [round(max(r[2] for r in minute), 1)
                                           for minute in _minutes(soak_rows)]  # fmt: skip
            soaked["rss_mb"] = live.rss(["soak"])
            # the process's own account, the last sample of each minute: DuckDB's memory and
            # the stream keys (steady: the crowd arrived before the soak)
            accounts = [a for a in live.accounts if a[1] == "soak" and a[2]]
            soaked["per_minute"] = {
                field: [minute[-1][2].get(field) for minute in _minutes(accounts)]
                for field in ("duckdb_mb", "duckdb_parts_mb", "stream_keys")
            }
        health = live.health()
    finally:
        live.stop()
    phases = sorted({s[1] for s in live.samples}, key=[s[1] for s in live.samples].index)
    return {
        "warehouse": {"users": users, "days": days, "events": events,
                      "build_or_reuse_s": round(build_s, 1)},
        "devices": len(ids), "products": len(products), "start_to_serving_s": start_s,
        "warm_up": warmed, "settled": {k: settled.get(k) for k in ("refreshes", "snapshots")},
        "decide_in_process": in_process, "open_loop": opened, "closed_loop": closed,
        "freshness": {"stream": stream, "profile": profile},
        "rss_mb": {"all": live.rss(), **{p: live.rss([p]) for p in phases}},
        "cpu": live.cpu_use(),
        "soak": soaked, "health_at_end": health,
        "memory_samples": live.samples,
    }  # fmt: skip


if __name__ == "__main__":  # a quick run: python -m bench.serving [SECONDS]
    quick = float(sys.argv[1]) if len(sys.argv) > 1 else 3
    result = run(
        ROOT / "bench" / "out", seconds=quick, closed_seconds=quick, probes=20, profile_probes=0
    )
    result.pop("memory_samples")
    print(json.dumps(result, indent=1))

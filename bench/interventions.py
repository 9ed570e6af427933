"""Interventions: how fast a fired rule reaches an SSE subscriber and a webhook, and what rule
evaluation costs per event as the number of rules grows.

1. End to end (``python -m serving``, empty warehouse, no refresh): 1,000 active rules — 999
   over 100 stream groups (each group counts page views of one path ``/c/N``; 10 rules per
   group with thresholds 5, 10, ... 50, so every background event is evaluated against 10
   rules) and the probe rule (``probe:views >= 1``). Background: ``rate`` events/s of a crowd
   of 2,000 devices on random paths. Probes: every 0.5 s a new device POSTs one page view of
   ``/probe``; its intervention is timed from the POST to its receipt by an SSE subscription
   (subscribed beforehand, in this process) and by a webhook receiver (a second process).
2. Evaluation cost, in process: a chunk of events through the stream engine with and without
   the interventions listener, for 10, 1,000 and 10,000 rules of which 10 read the group the
   events change (the rest read other groups), and for comparison with all rules reading it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.serving import ROOT, TOKEN, Conn, _free_port, _summary, tp2

GROUPS = 100


def _visit(device: str, path: str) -> list[dict[str, str]]:
    now = str(time.time_ns() // 1_000_000)
    return [{"e": "pv", "eid": str(uuid.uuid4()), "dtm": now, "stm": now, "p": "web",
             "tv": "js-4.6.0", "aid": "bench", "duid": device, "sid": device, "vid": "1",
             "url": f"https://shop.persona.dev{path}"}]  # fmt: skip


def _group(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "version": 1, "owner": "bench@persona.dev", "is_published": True,
            "attribute_key": {"name": "domain_userid"},
            "attributes": [{"name": "views", "type": "int64", "aggregation": "counter",
                            "events": [{"vendor": "com.snowplowanalytics.snowplow",
                                        "name": "page_view", "version": "1-0-0"}],
                            "criteria": {"all": [{"property": {"type": "atomic",
                                                               "name": "page_urlpath"},
                                                  "operator": "=", "value": path}]}}]}  # fmt: skip


def _rule(name: str, attribute: str, threshold: int) -> dict[str, Any]:
    return {"name": name, "version": 1, "owner": "bench@persona.dev", "is_published": True,
            "criteria": {"attribute": attribute, "operator": ">=", "value": threshold}}  # fmt: skip


RECEIVER = """
import sys, time, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        out.write(f"{time.time()} {body['target_attribute_key']['id']}\\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def end_to_end(work: Path, rate: float, seconds: float, background_rules: int = 999
               ) -> dict[str, Any]:  # fmt: skip
    """``background_rules``: 999 (with the probe's, 1,000) or 0 (the same groups and load,
    the probe's rule alone: the same-run comparison)."""
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    hook_port, api, collector = _free_port(), _free_port(), _free_port()
    received = work / "webhook.txt"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(hook_port), str(received)])
    env = {**os.environ, "PERSONA_API_TOKEN": TOKEN, "PERSONA_DUCKDB": str(work / "w.duckdb"),
           "PERSONA_WEBHOOK_SECRET": "bench-secret"}  # fmt: skip
    live = subprocess.Popen(
        [sys.executable, "-m", "serving", "--source", f"http://127.0.0.1:{collector}",
         "--listen", f"127.0.0.1:{api}", "--state-dir", str(work / "state"), "--spool",
         str(work / "spool"), "--no-refresh", "--no-snapshot", "--interventions", "",
         "--webhook", f"bench=http://127.0.0.1:{hook_port}/hook"],
        cwd=ROOT, env=env, stdout=(work / "serving.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{api}/api/v1"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{api}/health").is_success and httpx.get(
                        f"http://127.0.0.1:{collector}/health").is_success:  # fmt: skip
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(headers=headers, timeout=60) as client:
            for i in range(GROUPS):
                client.post(f"{base}/registry/attribute_groups/",
                            json=_group(f"g{i}", f"/c/{i}")).raise_for_status()  # fmt: skip
            client.post(f"{base}/registry/attribute_groups/",
                        json=_group("probe", "/probe")).raise_for_status()  # fmt: skip
            n = 0
            for i in range(GROUPS):
                for k in range(10):
                    if n < background_rules:
                        client.post(f"{base}/registry/interventions/",
                                    json=_rule(f"r{n}", f"g{i}:views", 5 * (k + 1))
                                    ).raise_for_status()  # fmt: skip
                        n += 1
            client.post(
                f"{base}/registry/interventions/", json=_rule("probe_fired", "probe:views", 1)
            ).raise_for_status()
            rules = len(client.get(f"{base}/registry/interventions/").json())
        probes = [str(uuid.uuid4()) for _ in range(int(seconds * 2))]
        sent: dict[str, float] = {}
        sse_at: dict[str, float] = {}
        query = "&".join(f"domain_userid={p}" for p in probes)

        def subscribe() -> None:
            with httpx.stream("GET", f"{base}/interventions?{query}", headers=headers,
                              timeout=httpx.Timeout(5, read=None)) as r:  # fmt: skip
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        doc = json.loads(line[6:])
                        sse_at[doc["target_attribute_key"]["id"]] = time.time()
                        if len(sse_at) == len(probes):
                            return

        visible: dict[str, float] = {}  # the same-run baseline: the probe's stream attribute

        def poll() -> None:
            with httpx.Client(headers=headers, timeout=5) as client:
                for device in probes:
                    while device not in sent:
                        time.sleep(0.005)
                    stop = time.time() + 10
                    while time.time() < stop:
                        got = client.post(
                            f"{base}/get-online-attributes",
                            json={
                                "attributes": ["probe_v1:views"],
                                "attribute_keys": {"domain_userid": [device]},
                            },
                        ).json()
                        if got["views"][0]:
                            visible[device] = time.time()
                            break
                        time.sleep(0.01)

        threading.Thread(target=subscribe, daemon=True).start()
        threading.Thread(target=poll, daemon=True).start()
        time.sleep(1)
        asyncio.run(_load(collector, rate, seconds, probes, sent))
        time.sleep(3)
        hook_at = {}
        for line in received.read_text().split("\n"):
            if line:
                t, target = line.split()
                hook_at.setdefault(target, float(t))
        sse = [sse_at[p] - sent[p] for p in probes if p in sse_at]
        hook = [hook_at[p] - sent[p] for p in probes if p in hook_at]
        attribute = [visible[p] - sent[p] for p in probes if p in visible]
        return {"rules": rules, "rate": rate, "seconds": seconds, "probes": len(probes),
                "stream_attribute": {**_summary(attribute), "received": len(attribute)},
                "sse": {**_summary(sse), "received": len(sse)},
                "webhook": {**_summary(hook), "received": len(hook)}}  # fmt: skip
    finally:
        live.terminate()
        live.wait(60)
        receiver.kill()
        receiver.wait()


async def _load(port: int, rate: float, seconds: float, probes: list[str],
                sent: dict[str, float]) -> None:  # fmt: skip
    rng = random.Random(7)
    crowd = [str(uuid.uuid4()) for _ in range(2000)]
    conns = [await Conn.open(port) for _ in range(4)]
    probe_conn = await Conn.open(port)
    start = time.perf_counter() + 0.05
    counter = iter(range(10**9))

    async def background(conn: Conn) -> None:
        while (due := start + next(counter) / rate) < start + seconds:
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            path = f"/c/{rng.randrange(GROUPS)}"
            await conn.request(tp2(_visit(rng.choice(crowd), path)))

    async def probing() -> None:
        for i, device in enumerate(probes):
            if (wait := start + 0.25 + i * 0.5 - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            sent[device] = time.time()
            await probe_conn.request(tp2(_visit(device, "/probe")))

    await asyncio.gather(*(background(c) for c in conns), probing())


def evaluation_cost(events: int = 1000, rounds: int = 5) -> list[dict[str, Any]]:
    """µs per event the interventions listener adds to the stream engine's observe."""
    import tempfile
    from datetime import datetime

    import duckdb

    from serving.interventions.engine import Interventions, RuleRegistry
    from serving.interventions.outbox import Outbox
    from serving.interventions.sse import Hub
    from serving.interventions.webhooks import Deliverer
    from serving.service import new_registry
    from serving.stores.memory import MemoryStore
    from serving.stream import StreamEngine

    out = []
    groups = 1000
    registry = new_registry()
    for i in range(groups):
        registry.put_group(_group(f"g{i}", f"/c/{i}"), persist=False)
    for total, affected in ((10, 10), (1000, 10), (10000, 10), (1000, 1000)):
        store = MemoryStore()
        engine = StreamEngine(store)
        engine.set_groups([registry.group("g0", 1)])
        rules = RuleRegistry(registry)
        for n in range(total):
            group = 0 if n < affected else 1 + n % (groups - 1)
            rules.put(_rule(f"r{n}", f"g{group}:views", 10**6 + n), persist=False)
        with tempfile.TemporaryDirectory() as tmp:
            con = duckdb.connect(f"{tmp}/w.duckdb")
            interventions = Interventions(rules, engine, store, Outbox(con), Hub(),
                                          Deliverer([], Outbox(con)))  # fmt: skip

            def chunk(n: int) -> list[dict[str, Any]]:  # n events of new devices, on /c/0
                return [{"event_id": str(uuid.uuid4()), "collector_tstamp": datetime.now(),
                         "event_vendor": "com.snowplowanalytics.snowplow",
                         "event_name": "page_view", "event_version": "1-0-0",
                         "domain_userid": str(uuid.uuid4()), "page_urlpath": "/c/0"}
                        for _ in range(n)]  # fmt: skip

            bare, hooked = [], []
            for _ in range(rounds):  # the least disturbed round of each (a shared machine)
                engine.listeners.clear()
                batch = chunk(events)
                started = time.perf_counter()
                engine.observe(batch)
                bare.append(time.perf_counter() - started)
                engine.listeners.append(interventions.on_stream)
                batch = chunk(events)
                started = time.perf_counter()
                engine.observe(batch)
                hooked.append(time.perf_counter() - started)
            per = 1e6 / events
            out.append({"rules": total, "affected": affected,
                        "evaluations": interventions.evaluations,
                        "observe_us_per_event": round(min(bare) * per, 2),
                        "with_interventions_us_per_event": round(min(hooked) * per, 2),
                        "interventions_us_per_event": round((min(hooked) - min(bare)) * per,
                                                            2)})  # fmt: skip
            con.close()
    return out


def run(out: Path, *, rate: float = 500, seconds: float = 20) -> dict[str, Any]:
    return {
        "evaluation": evaluation_cost(),
        "end_to_end": end_to_end(out / "interventions", rate, seconds),
        "end_to_end_probe_rule_only": end_to_end(out / "interventions", rate, seconds, 0),
    }

"""Webhook delivery against real HTTP servers on 127.0.0.1: every delivery reaches a receiver
process across a ``kill -9`` of the live process (duplicates only with the same delivery id);
a down, slow, failing or hanging endpoint does not delay the others, gives up into the
dead-letter table with its last error; a redirect is not followed; Retry-After is honoured;
a signature the receiver checks."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from snowplow_signals import InterventionCriterion, RuleIntervention, SignalsSandbox

from loader.errors import ConfigError
from serving.interventions.outbox import Delivery, Fire, Outbox
from serving.interventions.webhooks import Deliverer, parse_endpoints, verify
from tests.conftest import ROOT
from tests.loader.live_collector import free_port
from tests.serving.conftest import TOKEN
from tests.serving.test_signals_sdk import OWNER, groups, track

SECRET = "s3cret-for-tests"


class Receiver:
    """An in-process HTTP server answering by ``behave(path, attempt) -> (status, headers,
    delay)``; records (time, path, delivery id) of each request it finished."""

    def __init__(self, behave: Callable[[str, int], tuple[int, dict[str, str], float]]) -> None:
        self.got: list[tuple[float, str, str]] = []
        self.attempts: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                assert verify(SECRET.encode(), body, self.headers["persona-signature"])
                delivery = self.headers["persona-delivery-id"]
                n = receiver.attempts[delivery] = receiver.attempts.get(delivery, 0) + 1
                status, headers, delay = behave(self.path, n)
                time.sleep(delay)
                receiver.got.append((time.time(), self.path, delivery))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def behave(path: str, attempt: int) -> tuple[int, dict[str, str], float]:
    if path == "/slow":
        return 200, {}, 3.0
    if path == "/hang":
        return 200, {}, 30.0
    if path == "/fail":
        return 500, {}, 0.0
    if path == "/redirect":
        return 302, {"Location": "/ok"}, 0.0
    if path == "/busy":
        return (429, {"Retry-After": "1"}, 0.0) if attempt == 1 else (200, {}, 0.0)
    return 200, {}, 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(behave)
    yield r
    r.close()


def fire(seq: int) -> Fire:
    return Fire(seq, str(uuid.uuid4()), "rule", 1, "rule", "domain_userid", f"d{seq}",
                {"n": str(seq)}, datetime.now(UTC))  # fmt: skip


def test_a_bad_endpoint_does_not_delay_the_others_and_lands_in_dead_letters(
    receiver: Receiver, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}/down"  # nothing listens there
    names = ("ok", "slow", "hang", "fail", "redirect", "busy")
    specs = [f"{n}={receiver.url}/{n}" for n in names] + [f"down={down}"]
    endpoints = parse_endpoints(specs, [], concurrency=2, timeout=1.0, attempts=3, backoff=0.2,
                                environ={"PERSONA_WEBHOOK_SECRET": SECRET})  # fmt: skip
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    outbox = Outbox(con)
    deliverer = Deliverer(endpoints, outbox)
    deliverer.start()
    fires = [fire(i) for i in range(1, 11)]
    deliveries = [Delivery(str(uuid.uuid4()), f.intervention_id, f.seq, e.name, e.url,
                           f.body("x"), due=time.time())
                  for f in fires for e in endpoints]  # fmt: skip
    outbox.record(fires, deliveries)
    started = time.time()
    deliverer.enqueue(deliveries)
    deadline = time.time() + 10
    while time.time() < deadline and sum(p == "/ok" for _, p, _ in receiver.got) < 10:
        time.sleep(0.02)
    ok = [t for t, p, _ in receiver.got if p == "/ok"]
    # not held up by the slow (3 s each) or hanging ones (1 s timeouts, 3 attempts)
    assert len(ok) == 10 and max(ok) - started < 2.5
    time.sleep(max(0.0, started + 4.5 - time.time()))  # the failing ones use their budget
    deliverer.stop()
    status = dict(con.execute("select endpoint || ':' || status, count(*) from "
                              "interventions.deliveries group by 1").fetchall())  # fmt: skip
    assert status["ok:delivered"] == status["busy:delivered"] == 10
    assert status["fail:dead"] == status["redirect:dead"] == status["down:dead"] == 10
    dead = dict(con.execute("select endpoint, any_value(last_error) "
                            "from interventions.dead_letters group by 1").fetchall())  # fmt: skip
    assert "HTTP 500" in dead["fail"] and "gave up after 3 attempts" in dead["fail"]
    assert "redirect" in dead["redirect"] and "not followed" in dead["redirect"]
    assert "ConnectError" in dead["down"]
    attempts = dict(con.execute("select endpoint, max(attempts) from interventions.deliveries "
                                "group by 1").fetchall())  # fmt: skip
    assert attempts["fail"] == 3  # the budget
    assert con.execute(
        "select distinct last_status from interventions.deliveries where endpoint = 'redirect'"
    ).fetchall() == [(302,)]  # not retried
    assert sum(p == "/ok" for _, p, _ in receiver.got) == 10  # the redirect was not followed
    assert min(receiver.attempts[d] for _, p, d in receiver.got if p == "/busy") >= 2
    busy = sorted(t for t, p, _ in receiver.got if p == "/busy")
    assert busy[-1] - busy[0] >= 0.9  # the retry waited for Retry-After: 1
    con.close()


def test_bad_webhook_configuration_fails_naming_it() -> None:
    env = {"PERSONA_WEBHOOK_SECRET": SECRET}
    for specs, allow, environ, named in (
        (["ftp://x.example/hook"], [], env, "http(s)"),
        (["https://evil.example/hook"], ["crm.example"], env, "evil.example:443"),
        (["https://crm.example/hook"], [], {}, "PERSONA_WEBHOOK_SECRET_CRM_EXAMPLE_443"),
    ):
        with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
            parse_endpoints(specs, allow, environ=environ)
    assert parse_endpoints(["crm=https://crm.example/h"], ["crm.example"], environ=env)


def test_every_delivery_reaches_the_receiver_across_a_kill_9(live, tmp_path: Path,
                                                              monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("PERSONA_WEBHOOK_SECRET", SECRET)
    port, log = free_port(), tmp_path / "received.csv"
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.serving.webhook_receiver", str(port), str(log), "0.05"],
        cwd=ROOT,
    )
    try:
        flags = ("--no-refresh", "--webhook", f"crm=http://127.0.0.1:{port}/hook",
                 "--webhook-concurrency", "1", "--webhook-backoff", "0.2")  # fmt: skip
        server = live(*flags)
        sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
        views, _, _ = groups()
        seen = RuleIntervention(name="seen", version=1, owner=OWNER,
                                criteria=InterventionCriterion(attribute="shopper:page_views",
                                                               operator=">=", value=1))  # fmt: skip
        sdk.publish([views, seen])
        devices = [str(uuid.uuid4()) for _ in range(30)]
        for d in devices[:20]:
            track(server.collector_port, d, str(uuid.uuid4()))
        deadline = time.time() + 20  # kill while deliveries are still queued (50 ms each)
        while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 3):
            time.sleep(0.02)
        server.stop(signal.SIGKILL)
        assert len(log.read_text().split()) < 20  # mid-stream
        again = live(*flags, tmp=server.tmp)
        for d in devices[20:]:
            track(again.collector_port, d, str(uuid.uuid4()))
        deadline = time.time() + 30
        rows: list[list[str]] = []
        while time.time() < deadline:
            rows = [line.split(",") for line in log.read_text().split()]
            if {r[2] for r in rows} >= set(devices):
                break
            time.sleep(0.1)
        assert {r[2] for r in rows} >= set(devices)  # none lost
        by_delivery: dict[str, set[tuple[str, str]]] = {}
        for delivery, intervention, target in rows:
            by_delivery.setdefault(delivery, set()).add((intervention, target))
        assert all(len(v) == 1 for v in by_delivery.values())  # a duplicate: the same delivery
        per_device: dict[str, set[str]] = {}
        for delivery, _, target in rows:
            per_device.setdefault(target, set()).add(delivery)
        assert all(len(per_device[d]) == 1 for d in devices)  # one delivery id per fire
        assert again.stop() == 0
    finally:
        receiver.kill()
        receiver.wait()

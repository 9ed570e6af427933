"""API replicas (``persona serve --replica``) over the live process's Redis: definitions
published to the live process reach every replica, the tracker's events are read through any
of them, publishing to a replica is refused, and they keep serving when the live process is
gone (they hold no state of their own)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from snowplow_signals import SignalsSandbox
from snowplow_signals.api_client import SignalsAPIError

from tests.conftest import ROOT
from tests.loader.live_collector import free_port
from tests.serving.conftest import TOKEN
from tests.serving.test_signals_sdk import EXPECTED, groups, track, wait_for


def replica(redis_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving", "--replica", "--online-store", redis_url,
         "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, env={**os.environ, "PERSONA_API_TOKEN": TOKEN},
        stdout=log.open("a"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"the replica did not answer: {log.read_text()}")


def test_replicas_serve_what_the_live_process_computes(live, redis_url: str,
                                                       tmp_path: Path) -> None:  # fmt: skip
    server = live("--no-refresh", "--online-store", redis_url)
    replicas = [replica(redis_url, tmp_path / f"replica{i}.log") for i in range(2)]
    try:
        views, session, service = groups()
        SignalsSandbox(api_url=server.api, sandbox_token=TOKEN).publish([views, session, service])
        duid = str(uuid.uuid4())
        track(server.collector_port, duid, str(uuid.uuid4()))
        for _, url in replicas:
            sdk = SignalsSandbox(api_url=url, sandbox_token=TOKEN)
            got = wait_for(
                lambda sdk=sdk: _service(sdk, duid), lambda g: g.get("cart_value") == 55.5
            )
            assert {k: got[k] for k in EXPECTED} == EXPECTED

        # publishing is the live process's: a replica says where to go
        sdk = SignalsSandbox(api_url=replicas[0][1], sandbox_token=TOKEN)
        with pytest.raises(SignalsAPIError) as refused:
            sdk.publish([views])
        assert refused.value.status_code == 405 and "live process" in str(refused.value)
        unauthorized = requests.post(f"{replicas[0][1]}/api/v1/get-online-attributes",
                                     json={"service": "shop"}, timeout=5)  # fmt: skip
        assert unauthorized.status_code == 401

        # no state of their own: the live process gone, they answer the same from Redis
        assert server.stop() == 0
        for _, url in replicas:
            again = _service(SignalsSandbox(api_url=url, sandbox_token=TOKEN), duid)
            assert {k: again[k] for k in EXPECTED} == EXPECTED
    finally:
        for proc, _ in replicas:
            proc.terminate()
            assert proc.wait(timeout=30) == 0


def _service(sdk: SignalsSandbox, duid: str) -> dict:
    try:
        return sdk.get_service_attributes(name="shop", attribute_key="domain_userid",
                                          identifier=duid)  # fmt: skip
    except SignalsAPIError:  # the replica has not loaded the new definitions yet
        return {}


def test_a_replica_needs_redis(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--replica", "--listen", "127.0.0.1:0"],
        cwd=ROOT, env={**os.environ, "PERSONA_API_TOKEN": TOKEN}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--online-store redis://" in done.stderr

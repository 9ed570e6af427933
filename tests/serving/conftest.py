"""The live process as a user runs it (``python -m serving`` in its own process), a real
redis-server, and the real Snowplow tracker and Signals SDK as clients."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
import requests

from loader.enriched import parse_line
from loader.sources.synthetic import SyntheticConfig, generate_lines
from tests.conftest import ROOT
from tests.loader.conftest import kafka_broker  # noqa: F401 - the fixture (Snowflake mode)
from tests.loader.live_collector import free_port
from tests.models.conftest import Dbt

TOKEN = "test-token-" + "x" * 24


class LiveServer:
    def __init__(self, tmp: Path, warehouse: Path | None = None) -> None:
        self.tmp = tmp
        self.warehouse = warehouse or tmp / "warehouse.duckdb"
        self.collector_port = free_port()
        self.api_port = free_port()
        self.collector = f"http://127.0.0.1:{self.collector_port}"
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen[str] | None = None
        self.log = tmp / "serving.log"

    def start(self, *flags: str, timeout: float = 60) -> LiveServer:
        env = {**os.environ, "PERSONA_API_TOKEN": TOKEN, "PERSONA_DUCKDB": str(self.warehouse)}
        self._log = self.log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--source", self.collector,
             "--listen", f"127.0.0.1:{self.api_port}", "--state-dir", str(self.tmp / "state"),
             "--spool", str(self.tmp / "spool"), *flags],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serving exited: {self.log.read_text()}")
            try:  # the API, and the collector (its own process, started beside the API)
                if all(requests.get(f"{url}/health", timeout=1).ok
                       for url in (self.api, self.collector)):  # fmt: skip
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serving did not answer in {timeout} s: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def headers(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(*flags: str, warehouse: Path | None = None, tmp: Path | None = None) -> LiveServer:
        server = LiveServer(tmp or tmp_path, warehouse).start(*flags)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGKILL)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port of 127.0.0.1, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing (.ci/run installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse as `make demo` builds one, smaller: realtime and retrain models built.
    dbt (in this process) keeps it open: copy it with ``copy_warehouse``."""
    dbt = Dbt(tmp_path_factory.mktemp("demo") / "warehouse.duckdb")
    dbt.load(
        parse_line(line) for line in generate_lines(SyntheticConfig(users=150, days=7, seed=3))
    )
    dbt("build", "--exclude-resource-type", "test", "unit_test", vars={"as_of": "latest_event"})
    dbt("build", "--selector", "retrain", "--exclude-resource-type", "test", "unit_test")
    return dbt.warehouse


def copy_warehouse(warehouse: Path, to: Path) -> Path:
    """A copy of a warehouse this process has open (checkpointed first, so the file alone
    holds everything)."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
    to.write_bytes(warehouse.read_bytes())
    return to

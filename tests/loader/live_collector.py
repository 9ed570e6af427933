"""A collector as a user runs it: `python -m loader --source http://127.0.0.1:PORT` in its own
process, writing to a real DuckDB file. Shared by the collector, browser and hostile-input tests."""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import requests

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.db = tmp / "warehouse.duckdb"
        self.spool = tmp / "spool"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def launch(self, *flags: str, max_open_files: int = 0) -> None:
        """Start the loader and return at once; ``max_open_files``: its ``ulimit -n``."""

        def limit() -> None:
            if max_open_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loader", "--source", self.url, "--sink", f"duckdb:{self.db}",
             "--spool", str(self.spool), "--batch-seconds", "0.2", "--quiet",
             "--log-format", "json", *flags],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=limit,
        )  # fmt: skip

    def http_pid(self) -> int:
        """The collector's HTTP process, as its spool's writer lock names it."""
        return json.loads((self.spool / "writer.lock").read_bytes())["pid"]

    def start(self, *flags: str, max_open_files: int = 0) -> None:
        self.launch(*flags, max_open_files=max_open_files)
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        stderr = self.proc.stderr.read() if self.proc.poll() is not None else ""
        raise AssertionError(f"collector did not start: {stderr}")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        assert self.proc is not None
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        assert sig == signal.SIGKILL or self.proc.returncode == 0, err
        return out

    def stop_and_logs(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err

    def query(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.db))
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

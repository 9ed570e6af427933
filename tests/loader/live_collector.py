"""A collector as a user runs it: `python -m loader --source http://127.0.0.1:PORT` in its own
process, writing to a real DuckDB file. Shared by the collector, browser and hostile-input tests."""

from __future__ import annotations

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

    def start(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loader", "--source", self.url, "--sink", f"duckdb:{self.db}",
             "--spool", str(self.spool), "--batch-seconds", "0.2", "--quiet",
             "--log-format", "json", *flags],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
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

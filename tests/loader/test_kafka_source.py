"""The ``kafka://`` source's parts that a real broker cannot show on cue: a partition revoked
between two particular ``consume`` calls, a commit in the middle of a message, a token that is
not Kafka's. Also its URI and settings, and the real client with no broker to reach.

Delivery against a real Kafka-protocol broker (loading, commits after the warehouse's, kill -9,
rebalances, resuming) is in test_kafka_broker.py. Here ``FakeConsumer`` stands in for
``confluent_kafka.Consumer``: the calls the source makes, with a group's committed offsets,
ordered messages per partition, and the assignment and revocation callbacks inside ``consume``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from loader import offsets, pipeline
from loader.batch import Batch
from loader.columnar import Chunk
from loader.errors import ConfigError
from loader.failed import FailedEvent
from loader.sinks.duckdb import DuckDBSink
from loader.sources.kafka import KafkaConfig, KafkaSource, messages_chunk, parse_uri
from loader.sources.synthetic import SyntheticConfig, generate_lines
from loader.sources.tsv import parse_lines
from loader.uris import open_source
from tests.loader.paths import RowPaths
from tests.loader.same_batches import assert_same_batches

TOPIC = "enriched"


class FakeMessage:
    def __init__(self, partition: int, offset: int, value: bytes | None) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


class FakeConsumer:
    """A fake ``confluent_kafka.Consumer`` (see the module docstring)."""

    def __init__(
        self,
        log: list[tuple[str, dict[int, int]]],
        topic: dict[int, list[bytes | None]],
        per_call: int = 7,
        revoke_after_calls: tuple[int, list[int]] | None = None,
    ) -> None:
        self.log, self.topic = log, topic
        self.per_call, self.revoke_after = per_call, revoke_after_calls
        self.group_offsets: dict[int, int] = {}
        self.positions: dict[int, int] = {}
        self.calls = 0
        self.subscribed: tuple[Any, Any] | None = None
        self.when_drained: Callable[[], None] = lambda: None

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        assert topics == [TOPIC]
        self.subscribed = (on_assign, on_revoke)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> None:
        return None  # the brokers answer

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        assert self.subscribed is not None, "consume before subscribe"
        on_assign, on_revoke = self.subscribed
        if self.calls == 0:  # the group's first rebalance happens inside consume, as in Kafka
            on_assign(self, [TopicPartition(TOPIC, p, OFFSET_INVALID) for p in self.topic])
        self.calls += 1
        if self.revoke_after and self.calls == self.revoke_after[0]:
            lost = self.revoke_after[1]
            on_revoke(self, [TopicPartition(TOPIC, p) for p in lost])
            for p in lost:
                del self.positions[p]
        out: list[FakeMessage] = []
        order = sorted(self.positions)
        turn = (self.calls - 1) % len(order) if order else 0
        for p in order[turn:] + order[:turn]:  # up to per_call of each, partitions in turn
            start = self.positions[p]
            end = min(len(self.topic[p]), start + self.per_call, start + num_messages - len(out))
            out.extend(
                FakeMessage(p, offset, self.topic[p][offset]) for offset in range(start, end)
            )
            self.positions[p] = end
        if not out:
            self.when_drained()
        return out

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]:
        return [
            TopicPartition(TOPIC, tp.partition, self.group_offsets.get(tp.partition, -1001))
            for tp in partitions
        ]

    def assign(self, partitions: list[Any]) -> None:
        for tp in partitions:
            start = tp.offset if tp.offset >= 0 else self.group_offsets.get(tp.partition, 0)
            self.positions[tp.partition] = start

    def commit(self, offsets: list[Any] | None = None, asynchronous: bool = True) -> None:
        assert offsets and not asynchronous
        done = {tp.partition: tp.offset for tp in offsets}
        self.log.append(("commit", done))
        self.group_offsets.update(done)

    def close(self) -> None:
        pass


def make_topic(partitions: int = 2, events: int = 60) -> dict[int, list[bytes | None]]:
    lines = list(islice(generate_lines(SyntheticConfig(users=20, days=2, seed=3)), events))
    assert len(lines) == events
    return {p: [line.encode() for line in lines[p::partitions]] for p in range(partitions)}


class RecordingSink(DuckDBSink):
    """The real DuckDB sink, noting each write in the shared log."""

    def __init__(self, path: Path, log: list[tuple[str, Any]]) -> None:
        super().__init__(path)
        self.log = log

    def write(self, batch: Batch) -> None:
        super().write(batch)
        self.log.append(("write", len(batch)))


def source_for(consumer: FakeConsumer, **kw: Any) -> KafkaSource:
    source = KafkaSource(KafkaConfig("127.0.0.1:9092", TOPIC), lambda _cfg: consumer, **kw)
    consumer.when_drained = source.stop
    return source


def test_a_revoked_partition_is_no_longer_committed(tmp_path: Path) -> None:
    topic = make_topic()
    log: list[tuple[str, Any]] = []
    consumer = FakeConsumer(log, topic, revoke_after_calls=(3, [1]))
    sink = RecordingSink(tmp_path / "w.duckdb", log)
    pipeline.run(source_for(consumer), sink, batch_rows=7)
    commits = [done for kind, done in log if kind == "commit"]
    assert commits[:2] == [{0: 7}, {0: 7, 1: 7}]
    assert commits[-1] == {0: 30}  # partition 1 is another process's now: never committed again
    assert set(commits[-2]) == {0}
    sink.close()


def test_a_multi_line_message_is_read_whole_and_marked_read_with_its_chunk() -> None:
    lines = make_topic(partitions=1, events=2)[0]
    topic: dict[int, list[bytes | None]] = {0: [b"\n".join(x for x in lines if x)]}
    source = source_for(FakeConsumer([], topic))
    assert source.position() == offsets.token("kafka")
    with RowPaths() as paths:
        chunk = next(iter(source))
    assert isinstance(chunk, Chunk) and chunk.table.num_rows == 2
    assert (paths.fast, paths.slow) == (2, 0)  # the lines of a message, column by column
    assert source.position() == offsets.token("kafka", 0, 1)


def test_a_batch_of_multi_line_messages_ends_near_its_row_limit(tmp_path: Path) -> None:
    """A poll can hold more lines than the open batch can take: the messages that do not fit
    wait for the next batch (a message is never split), so a batch passes ``batch_rows`` by
    less than one message."""
    lines = make_topic(partitions=1, events=36)[0]
    topic: dict[int, list[bytes | None]] = {
        0: [b"\n".join(lines[i : i + 3]) for i in range(0, 36, 3)]
    }
    log: list[tuple[str, Any]] = []
    sink = RecordingSink(tmp_path / "w.duckdb", log)
    with RowPaths() as paths:
        summary = pipeline.run(source_for(FakeConsumer(log, topic)), sink, batch_rows=10)
    sink.close()
    assert (paths.fast, paths.slow) == (36, 0)
    sizes = [n for kind, n in log if kind == "write"]
    assert summary.good == 36 and sum(sizes) == 36
    assert max(sizes) <= 10 + 2, sizes  # a poll of 7 messages would have been 21 rows
    commits = [done for kind, done in log if kind == "commit"]
    assert [done[0] for done in commits] == sorted({done[0] for done in commits})
    assert commits[-1] == {0: 12}


LINES = [line.encode() for line in islice(generate_lines(SyntheticConfig(users=3, seed=5)), 6)]
VALUES = st.one_of(
    st.sampled_from(LINES),
    st.lists(st.sampled_from(LINES), min_size=2, max_size=3).map(b"\n".join),
    st.sampled_from([b"", b"\n", b"\r\n", b"broken", b"\xff\xfe", LINES[0] + b"\r\n",
                     LINES[1] + b"\n\n" + LINES[2], b"\ufeff".decode("unicode_escape").encode()
                     + LINES[3]]),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=8))
def test_a_poll_parsed_as_one_chunk_equals_each_message_parsed_alone(values: list[bytes]) -> None:
    """The reference is each message on its own through the per-line parser, as the source
    read it before: the same rows in order, the same failed events, each naming its message."""
    messages = [(f"kafka://b/{TOPIC}/0@{i}", v) for i, v in enumerate(values)]
    fast, slow = Batch(), Batch()
    fast.add(messages_chunk(messages))
    for where, value in messages:
        items = list(parse_lines(value.split(b"\n"), where))
        for item in items or [FailedEvent("", "invalid_payload", "empty Kafka message", where)]:
            slow.add(item)
    assert_same_batches(fast, slow)


def test_seek_takes_only_a_kafka_token_of_partition_offset_pairs() -> None:
    source = source_for(FakeConsumer([], make_topic()))
    with pytest.raises(ConfigError, match="another kind of source"):
        source.seek(offsets.token("spool", 1, 2))
    with pytest.raises(ConfigError, match="partition/offset pairs"):
        source.seek(offsets.token("kafka", 1, 2, 3))


def test_uri_parsing() -> None:
    cfg = parse_uri(
        "kafka://k1:9092,k2:9093/snowplow.enriched?group=loaders&offset_reset=latest"
        "&security.protocol=SASL_SSL",
        environ={"PERSONA_KAFKA_SASL_PASSWORD": "s3cret", "PERSONA_BATCH_ROWS": "5"},
    )
    assert (cfg.brokers, cfg.topic, cfg.group, cfg.offset_reset) == (
        "k1:9092,k2:9093", "snowplow.enriched", "loaders", "latest",
    )  # fmt: skip
    assert cfg.consumer_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.password": "s3cret",
        "bootstrap.servers": "k1:9092,k2:9093",
        "group.id": "loaders",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest",
    }
    assert parse_uri("kafka://[::1]:9092/t", environ={}).group == "persona"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("kafka:///topic", "give the brokers"),
        ("kafka://a b:9092/topic", "give the brokers"),
        ("kafka://k:9092", "give one topic"),
        ("kafka://k:9092/a/b", "give one topic"),
        ("kafka://k:9092/t?grup=x", "unknown parameter 'grup'"),
        ("kafka://k:9092/t?group=", "group must not be empty"),
        ("kafka://k:9092/t?offset_reset=newest", "offset_reset is earliest or latest"),
        ("kafka://k:9092/t?enable.auto.commit=true", "enable.auto.commit cannot be set"),
        ("kafka://k:9092/t?group.id=x", "group.id cannot be set"),
    ],
)
def test_uri_errors_say_what_would_work(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_uri(uri, environ={})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_real_client_refuses_a_bad_setting_as_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"no\.such\.setting"):
        open_source(f"kafka://127.0.0.1:{closed_port()}/t?no.such.setting=1")


def test_the_real_client_subscribes_idles_and_stops_without_a_broker() -> None:
    """The real confluent_kafka.Consumer against a closed port: the calls the source makes
    (subscribe with callbacks, consume, close) match the client's, and no broker means idle."""
    source = open_source(f"kafka://127.0.0.1:{closed_port()}/enriched?group=t")
    assert isinstance(source, KafkaSource)
    items = iter(source)
    assert next(items) is None and next(items) is None  # idle: the pipeline can commit on time
    source.stop()
    assert list(items) == []
    source.commit()  # nothing read: nothing to commit, and no error
    source.close()


def test_brokers_that_do_not_resolve_stop_the_loader_with_a_hint(tmp_path: Path) -> None:
    """Not an error every few milliseconds forever: backoff, a bounded wait, what to check,
    and a non-zero exit."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "loader", "--source", "kafka://no-such-host.invalid:9092/t",
         "--sink", f"duckdb:{tmp_path / 'w.duckdb'}", "--kafka-connect-timeout", "2", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no broker of no-such-host.invalid:9092 answered in 2 s" in done.stderr
    assert "check that the host names in --source resolve" in done.stderr
    assert len(done.stderr.splitlines()) < 15, done.stderr  # librdkafka's lines throttled

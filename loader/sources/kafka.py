"""``kafka://BROKERS/TOPIC?group=NAME``: enriched TSV from a Kafka topic, as a consumer group.

One message is one enriched event (a message holding several lines is split on newlines), as
Snowplow Enrich writes its enriched stream. Offsets are committed to Kafka only after the
warehouse commit (the pipeline calls ``commit()`` after ``sink.write``), never automatically,
so a crash re-reads at most the batch in flight. Scale by running more loader processes with
the same ``group``: Kafka spreads the topic's partitions across them.

The position (the Snowflake sink's offset token) lists, for each partition this process reads,
the offset of the next message: ``kafka:P:NEXT:P:NEXT...``. A restarted loader starts each
partition at the later of Kafka's committed offset and the warehouse's token, so a crash
between the warehouse commit and the Kafka commit is not loaded twice.

Needs the ``kafka`` extra (``pip install 'persona[kafka]'``, confluent-kafka).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa

from loader import offsets
from loader.columnar import Chunk, parse_block
from loader.errors import ConfigError, PersonaError, SourceError
from loader.failed import ErrorType, FailedEvent
from loader.settings import DEFAULT

log = logging.getLogger("persona.kafka")

TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
BROKER_RE = re.compile(r"[A-Za-z0-9._-]+(:\d{1,5})?|\[[0-9A-Fa-f:]+\](:\d{1,5})?")
# Settings this source owns: offsets are committed by hand, after the warehouse commit.
MANAGED = frozenset(
    {"bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store"}
)
COMMITTED_TIMEOUT = 10.0  # seconds to wait for the group's committed offsets on assignment
ENV_PREFIX = "PERSONA_KAFKA_"  # PERSONA_KAFKA_SASL_PASSWORD=... sets sasl.password


class Consumer(Protocol):
    """The part of ``confluent_kafka.Consumer`` this source uses."""

    def subscribe(self, topics: list[str], on_assign: Callable[..., None] = ...,
                  on_revoke: Callable[..., None] = ...) -> None: ...  # fmt: skip

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]: ...

    def assign(self, partitions: list[Any]) -> None: ...

    def incremental_assign(self, partitions: list[Any]) -> None: ...

    def commit(self, offsets: list[Any] | None = None, asynchronous: bool = True) -> Any: ...

    def close(self) -> None: ...

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


@dataclass(frozen=True)
class KafkaConfig:
    brokers: str
    topic: str
    group: str = "persona"
    offset_reset: str = "earliest"  # where a group with no committed offset starts
    client: dict[str, str] = field(default_factory=dict)  # other librdkafka settings

    @property
    def cooperative(self) -> bool:
        """Whether rebalances are incremental (``partition.assignment.strategy=
        cooperative-sticky``): a rebalance then moves only some partitions, and the others
        stay with their process (librdkafka allows no mix of the two kinds)."""
        return "cooperative" in self.client.get("partition.assignment.strategy", "")

    def consumer_config(self) -> dict[str, Any]:
        return {
            **self.client,
            "bootstrap.servers": self.brokers,
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.offset_reset,
        }


def parse_uri(uri: str, environ: Mapping[str, str] | None = None) -> KafkaConfig:
    """``kafka://HOST:PORT[,HOST:PORT...]/TOPIC?group=NAME&offset_reset=earliest|latest``;
    any other parameter with a dot in its name (``security.protocol=SASL_SSL``) and any
    ``PERSONA_KAFKA_<KEY>`` variable (``PERSONA_KAFKA_SASL_PASSWORD``) go to librdkafka."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(uri)
    brokers = parts.netloc
    if not brokers or not all(BROKER_RE.fullmatch(b) for b in brokers.split(",")):
        raise ConfigError(
            f"--source {uri}: give the brokers as kafka://HOST:PORT[,HOST:PORT...]/TOPIC"
        )
    topic = parts.path.lstrip("/")
    if not TOPIC_RE.fullmatch(topic):
        raise ConfigError(
            f"--source {uri}: give one topic after the brokers, kafka://BROKERS/TOPIC "
            "(letters, digits, '.', '_', '-')"
        )
    values: dict[str, Any] = {}
    client: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and value:
            client[name.removeprefix(ENV_PREFIX).lower().replace("_", ".")] = value
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("group", "offset_reset"):
            if not value:
                raise ConfigError(f"--source {uri}: {key} must not be empty")
            values[key] = value
        elif "." in key:
            client[key] = value
        else:
            raise ConfigError(
                f"--source {uri}: unknown parameter {key!r}; use group, offset_reset, or a "
                "librdkafka setting such as security.protocol"
            )
    if taken := sorted(MANAGED & set(client)):
        raise ConfigError(
            f"--source {uri}: {', '.join(taken)} cannot be set: the loader sets the brokers "
            "and group from the URI and commits offsets itself, after the warehouse commit"
        )
    if values.get("offset_reset", "earliest") not in ("earliest", "latest"):
        raise ConfigError(f"--source {uri}: offset_reset is earliest or latest")
    return KafkaConfig(brokers, topic, client=client, **values)


def real_consumer(config: dict[str, Any]) -> Consumer:
    """A ``confluent_kafka.Consumer``; a setting librdkafka refuses is a configuration error."""
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ConfigError(
            "the kafka source needs the kafka extra: pip install 'persona[kafka]'"
        ) from exc
    try:
        consumer = confluent_kafka.Consumer(
            {
                **config,
                "logger": client_log,
                "error_cb": _ThrottledErrors(config["bootstrap.servers"]),
            }
        )
        # its stubs spell some parameters differently from the Protocol, which tests implement
        return cast(Consumer, consumer)
    except confluent_kafka.KafkaException as exc:
        raise ConfigError(f"kafka consumer settings: {exc.args[0].str()}") from exc


class KafkaSource:
    """Yields the events of every message of the partitions this process is assigned; ``None``
    while the topic is idle, so the pipeline commits a waiting batch on time. Resumable,
    acknowledging (Kafka's committed offsets), chunked, streaming, closable."""

    finite = False
    protects_privacy = False

    def __init__(
        self,
        config: KafkaConfig,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = real_consumer,
        max_messages: int = 1000,
        idle_seconds: float = 0.2,
        connect_timeout: float = DEFAULT.kafka_connect_timeout,
    ) -> None:
        self.config = config
        self.consumer = consumer_factory(config.consumer_config())
        self.max_messages, self.idle = max_messages, idle_seconds
        self.connect_timeout = connect_timeout
        self._next: dict[int, int] = {}  # partition -> offset after the last message yielded
        self._resume: dict[int, int] = {}  # partition -> offset from the warehouse's token
        self._stop = threading.Event()
        self.room = 0  # what the pipeline's open batch can still take (0: no limit)
        self.failure: PersonaError | None = None  # why it stopped by itself

    @property
    def name(self) -> str:
        return f"kafka://{self.config.brokers}/{self.config.topic}"

    def position(self) -> str:
        return offsets.token("kafka", *(n for p in sorted(self._next) for n in (p, self._next[p])))

    def seek(self, token: str) -> None:
        """Resume after ``token`` (the warehouse's last committed position), applied to each
        partition as it is assigned."""
        numbers = offsets.parse(token, "kafka")
        if len(numbers) % 2:
            raise ConfigError(f"offset token {token!r}: expected partition/offset pairs")
        self._resume = dict(zip(numbers[::2], numbers[1::2], strict=True))

    def commit(self) -> None:
        """Everything yielded so far is in the warehouse: commit it to Kafka."""
        if not self._next:
            return
        from confluent_kafka import KafkaException, TopicPartition

        topic = self.config.topic
        done = [TopicPartition(topic, p, n) for p, n in sorted(self._next.items())]
        try:
            self.consumer.commit(offsets=done, asynchronous=False)
        except KafkaException as exc:  # a rebalance, a broker away: the next commit carries them
            log.warning("kafka offsets not committed (%s); they are in the warehouse, and the "
                        "next commit includes them", exc)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        resumed = [tp for tp in partitions if tp.partition in self._resume]
        if resumed:  # start at the later of Kafka's commit and the warehouse's token
            from confluent_kafka import KafkaException

            try:  # bounded: a broker that never answers must not block a SIGTERM
                answer = consumer.committed(resumed, timeout=COMMITTED_TIMEOUT)
                committed = {tp.partition: tp.offset for tp in answer}
            except KafkaException as exc:  # the warehouse's token alone: at worst re-read
                log.warning("kafka committed offsets not read (%s); resuming from the "
                            "warehouse's offset token", exc)  # fmt: skip
                committed = {}
            for tp in resumed:
                tp.offset = max(committed.get(tp.partition, -1), self._resume[tp.partition])
        log.info("assigned partitions %s of %s", [tp.partition for tp in partitions],
                 self.config.topic)  # fmt: skip
        if self.config.cooperative:  # added to the partitions this process keeps
            consumer.incremental_assign(partitions)
        else:  # all of this process's partitions, after all were revoked
            consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        # Another process owns them now and starts at Kafka's committed offset; what this one
        # still has in flight may be loaded twice (the models deduplicate), never lost.
        for tp in partitions:
            self._next.pop(tp.partition, None)
        log.info("revoked partitions %s", [tp.partition for tp in partitions])

    def __iter__(self) -> Iterator[Chunk | None]:
        """One chunk per poll: the messages' lines parsed together, column by column
        (``columnar.parse_block``), each failed event naming its message. A chunk holds whole
        messages, no more lines than the open batch can take (at least one message), so a
        commit never marks part of a message done; what does not fit waits for the next."""
        reached = yield from self._reach_brokers()
        if not reached:
            return
        self.consumer.subscribe(
            [self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        pending: list[tuple[int, int, str, bytes]] = []  # (partition, offset, where, value)
        while not self._stop.is_set():
            if not pending:  # rebalances happen inside consume: never with messages pending
                want = min(self.max_messages, self.room) if self.room else self.max_messages
                for message in self.consumer.consume(want, self.idle):
                    error = message.error()
                    if error is not None:
                        if getattr(error, "fatal", lambda: False)():
                            raise SourceError(f"kafka: {error}")
                        log.warning("kafka: %s", error)
                        continue
                    partition, offset = message.partition(), message.offset()
                    where = f"{self.name}/{partition}@{offset}"
                    pending.append((partition, offset, where, message.value() or b""))
                if not pending:
                    yield None
                    continue
            take, lines = 0, 0
            while take < len(pending):
                lines += pending[take][3].count(b"\n") + 1
                if take and self.room and lines > self.room:
                    break
                take += 1
            chunk, pending = pending[:take], pending[take:]
            for partition, offset, _, _ in chunk:
                self._next[partition] = offset + 1  # in hand: all of it is in the chunk below
            yield messages_chunk([(where, value) for _, _, where, value in chunk])

    def _reach_brokers(self) -> Generator[None, None, bool]:
        """Ask the brokers for the topic's metadata until one answers, yielding ``None`` while
        it waits (the pipeline stays responsive, ``stop()`` works), with backoff; after
        ``connect_timeout`` seconds, ``failure`` says what to check and iteration ends."""
        from confluent_kafka import KafkaException

        started = time.monotonic()
        delay, warned_at = self.idle, -60.0
        while not self._stop.is_set():
            try:
                self.consumer.list_topics(self.config.topic, timeout=max(self.idle, 0.1))
                if warned_at >= 0:
                    log.info("kafka: brokers %s reached", self.config.brokers)
                return True
            except KafkaException as exc:
                waited = time.monotonic() - started
                reason = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
                if waited >= self.connect_timeout:
                    self.failure = SourceError(
                        f"kafka: no broker of {self.config.brokers} answered in "
                        f"{self.connect_timeout:.0f} s ({reason}); check that the host names "
                        "in --source resolve and the ports are reachable from this machine "
                        "(DNS, firewall, security.protocol), then start the loader again"
                    )
                    log.error("%s", self.failure)
                    return False
                if waited - warned_at >= 10:
                    warned_at = waited
                    log.warning("kafka: brokers %s not reachable yet (%s); retrying with backoff "
                                "for up to %.0f s (--kafka-connect-timeout)",
                                self.config.brokers, reason, self.connect_timeout)  # fmt: skip
            until = time.monotonic() + delay
            while time.monotonic() < until and not self._stop.is_set():
                yield None
                self._stop.wait(min(self.idle, max(0.0, until - time.monotonic())))
            delay = min(delay * 2, 5.0)
        return False


class _Throttle(logging.Filter):
    """Lets each line of librdkafka's log through at most once per ``EVERY_SECONDS`` (lines
    that differ only in numbers count as one): an unreachable broker is logged every few
    milliseconds otherwise."""

    EVERY_SECONDS = 30.0

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"[0-9]+", "N", record.getMessage())
        now = time.monotonic()
        if now - self.last.get(key, -self.EVERY_SECONDS) < self.EVERY_SECONDS:
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        return True


client_log = logging.getLogger("persona.kafka.client")  # librdkafka's own lines
client_log.addFilter(_Throttle())


class _ThrottledErrors:
    """librdkafka's error callback: each kind of error logged at most once per
    ``EVERY_SECONDS`` with how often it recurred (an unreachable broker reports an error
    every few milliseconds)."""

    EVERY_SECONDS = 30.0

    def __init__(self, brokers: str) -> None:
        self.brokers = brokers
        self.last: dict[str, tuple[float, int]] = {}  # error name -> (logged at, since then)

    def __call__(self, err: Any) -> None:
        name = err.name() if hasattr(err, "name") else str(err)
        now = time.monotonic()
        logged_at, since = self.last.get(name, (-self.EVERY_SECONDS, 0))
        if now - logged_at < self.EVERY_SECONDS:
            self.last[name] = (logged_at, since + 1)
            return
        self.last[name] = (now, 0)
        again = f" ({since} more since the last report)" if since else ""
        log.warning("kafka (%s): %s%s", self.brokers, err, again)


def messages_chunk(messages: list[tuple[str, bytes]]) -> Chunk:
    """Messages (where each came from, its value) as one chunk, as parsing each message's
    lines on its own would give them (``tsv.parse_lines``); a message without a line is a
    failed event. Items are the messages' non-empty lines, an empty message one item."""
    values: list[bytes] = []
    where_of: list[str] = []  # per item of the chunk
    block_items: list[int] = []  # per item parsed in the block: its item in the chunk
    empty: list[int] = []
    for where, value in messages:
        lines = sum(1 for line in value.split(b"\n") if line.rstrip(b"\r\n"))
        if not lines:
            empty.append(len(where_of))
            where_of.append(where)
            continue
        values.append(value if value.endswith(b"\n") else value + b"\n")
        block_items.extend(range(len(where_of), len(where_of) + lines))
        where_of.extend([where] * lines)
    block = parse_block(b"".join(values)) if values else None
    failed: dict[int, FailedEvent] = {
        i: FailedEvent("", ErrorType.INVALID_PAYLOAD, "empty Kafka message", where_of[i])
        for i in empty
    }
    if block is None:
        table, good = _empty_chunk_table(), pa.array([], pa.int64())
    else:
        table = block.table
        good = pa.array([block_items[i] for i in block.good_items.to_pylist()], pa.int64())
        for i, event in zip(block.failed_items, block.failed, strict=True):
            item = block_items[i]
            failed[item] = replace(event, source=where_of[item])
    order = sorted(failed)
    return Chunk(table, [failed[i] for i in order], good, order)


def _empty_chunk_table() -> pa.Table:
    return parse_block(b"").table

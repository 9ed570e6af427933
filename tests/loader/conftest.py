from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loader.kafka_broker import Broker, tansu_binary
from tests.loader.live_collector import Collector


@pytest.fixture
def unstarted_collector(tmp_path: Path) -> Iterator[Collector]:
    """A collector for the test to start with its own flags, killed after the test if still up
    (a failed assertion must not leave a process behind)."""
    c = Collector(tmp_path)
    yield c
    if c.proc and c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()


@pytest.fixture
def collector(unstarted_collector: Collector) -> Collector:
    """A collector process on a free port of 127.0.0.1, killed after the test if still up."""
    unstarted_collector.start()
    return unstarted_collector


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Kafka-protocol broker (Tansu) on a free port of 127.0.0.1 for the whole session, stopped
    at its end; each test makes its own topics and groups. Skips (fails under CI) without it."""
    broker = Broker(tansu_binary(), tmp_path_factory.mktemp("kafka") / "broker.log")
    yield broker
    broker.stop()

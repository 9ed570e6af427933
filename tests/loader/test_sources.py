"""Every source states what it can do as types (loader/sources/base.py), and the pipeline and
the CLI go by them: no probing for attributes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from loader import pipeline, settings
from loader.sources.base import Acknowledging, Chunked, Closable, Resumable, Source, Streaming
from loader.uris import open_source

CAPABILITIES = (Resumable, Acknowledging, Chunked, Streaming, Closable)


def capabilities(source: object) -> set[str]:
    return {c.__name__ for c in CAPABILITIES if isinstance(source, c)}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    tsv = tmp_path / "events.tsv"
    tsv.write_text("")
    csv = tmp_path / "events.csv"
    csv.write_text("event_id,collector_tstamp\n")
    return {"tsv": str(tsv), "csv": str(csv), "tail": str(tmp_path / "tail.tsv")}


@pytest.mark.parametrize(
    ("uri", "finite", "expected"),
    [
        ("file:{tsv}", True, set()),
        ("csv:{csv}", True, set()),
        ("synthetic:?users=1&days=1", True, set()),
        ("tail:{tail}", False, {"Resumable", "Acknowledging", "Streaming"}),
        ("kafka://127.0.0.1:1/topic", False, {n.__name__ for n in CAPABILITIES}),
        ("http://127.0.0.1:0", False, {n.__name__ for n in CAPABILITIES}),
    ],
)
def test_each_source_has_its_capabilities(
    uri: str, finite: bool, expected: set[str], files: dict[str, str], tmp_path: Path
) -> None:
    if uri.startswith("kafka"):
        pytest.importorskip("confluent_kafka")
    spooled = dataclasses.replace(settings.DEFAULT, spool=str(tmp_path / "spool"))
    source = open_source(uri.format(**files), spooled)
    try:
        assert isinstance(source, Source)
        assert source.finite is finite
        assert capabilities(source) == expected
    finally:
        if isinstance(source, Closable):
            source.close()


def test_a_plain_iterable_is_counted() -> None:
    """What has no position of its own gets one: the number of items yielded."""
    counted = pipeline.Counted([])
    assert capabilities(counted) == {"Resumable", "Chunked"}
    assert isinstance(counted, Source)

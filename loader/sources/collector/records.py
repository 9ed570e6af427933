"""Spooled records to events: one by one (``to_event``), or a block at a time, enriched per
record and typed column by column (``to_chunk``, the fast path)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import orjson

from loader.columnar import Chunk, parse_rows
from loader.contract import utcnow
from loader.enrich import EnrichConfig, Received, enrich_or_fail, enrich_row, refused, typed_or_fail
from loader.enriched import Event, FieldError
from loader.failed import ErrorType, FailedEvent
from loader.metrics import METRICS
from loader.spool import Record

log = logging.getLogger("persona.collector")

# Spooled records enriched and typed together; a block never waits to fill.
BLOCK_RECORDS = 1000


def to_event(record: Record, cfg: EnrichConfig, source: str) -> Event | FailedEvent:
    """Never raises: a spooled record that cannot be enriched must not wedge the loader, which
    would meet it again after every restart."""
    try:
        if "bad" in record:
            return _bad(record, source)
        return enrich_or_fail(_received(record), cfg, source)
    except Exception as exc:  # a bug in enrichment: keep the input and the reason
        return _enrich_error(record, exc, source)


def to_chunk(records: list[Record], cfg: EnrichConfig, source: str) -> Chunk:
    """A block of spooled records as ``to_event`` would make them, one by one, but typed column
    by column (``columnar.parse_rows``): per event, only the enrichment itself runs in Python.
    A property test holds the two equal (tests/loader/test_collector_block.py)."""
    etl = utcnow()
    rows: list[list[str]] = []
    row_items: list[int] = []
    received: list[Received] = []
    done: dict[int, Event | FailedEvent] = {}
    for i, record in enumerate(records):
        try:
            if "bad" in record:
                done[i] = _bad(record, source)
                continue
            got = _received(record)
            try:
                rows.append(enrich_row(got, cfg, etl))
            except FieldError as exc:
                done[i] = refused(got, cfg, exc, source)
                continue
            row_items.append(i)
            received.append(got)
        except Exception as exc:  # a bug in enrichment, as in to_event
            done[i] = _enrich_error(record, exc, source)

    def per_row(row: int) -> Event | FailedEvent:
        try:
            return typed_or_fail(rows[row], received[row], cfg, source)
        except Exception as exc:
            return _enrich_error(records[row_items[row]], exc, source)

    try:
        return parse_rows(rows, row_items, done, per_row)
    except Exception:  # a bug in the block path must not wedge the spool: go record by record
        log.exception("typing a block failed; enriching its %d records one by one", len(records))
        METRICS.add(rows_slow=len(records))
        events = [to_event(record, cfg, source) for record in records]
        return parse_rows([], [], dict(enumerate(events)), per_row)


def _received(record: Record) -> Received:
    collector_tstamp = datetime(1970, 1, 1) + timedelta(milliseconds=record["t"])
    return Received(record["p"], collector_tstamp, record.get("ip", ""),
                    record.get("ua", ""), record.get("nuid", ""))  # fmt: skip


def _bad(record: Record, source: str) -> FailedEvent:
    return FailedEvent(record["bad"], ErrorType.INVALID_PAYLOAD, record["error"], source)


def _enrich_error(record: Record, exc: Exception, source: str) -> FailedEvent:
    log.exception("enrichment failed")
    raw = orjson.dumps(record, default=str).decode()
    return FailedEvent(raw, ErrorType.ENRICH_ERROR, f"{type(exc).__name__}: {exc}", source)

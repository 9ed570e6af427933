"""Failed events: input the loader could not turn into an event, kept with the reason.

``error_type`` (a column of ``atomic.failed_events`` that users query) is always one of
``ErrorType``; the values never change once released. docs/failed-events.md lists them with
the stage that gives each:

- ``wrong_field_count``: a TSV line without 131 fields, or a CSV row not as wide as its header
- ``invalid_field``: a field's value does not fit its type (or an event_id is not a UUID)
- ``invalid_json``: a self-describing JSON field (or a CSV entity column) is not JSON
- ``missing_field``: no ``event_id`` or ``collector_tstamp``
- ``invalid_encoding``: bytes that are not UTF-8 (``raw`` shows them as ``\\xNN``)
- ``invalid_payload``: a collector request or tracker payload that is not an event, or an
  empty Kafka message
- ``invalid_csv``: a row the csv module refuses (``raw`` is empty; the message gives the line)
- ``incomplete_line``: half a line left at the end of a rotated ``tail:`` file
- ``enrich_error``: the collector's enrichment failed on a payload (a bug: report it)
- ``unprocessable``: a stage failed for a reason nobody foresaw (a bug, a library's limit)
- ``schema_not_allowed``: an entity schema outside the schema policy
- ``warehouse_rejected``: the warehouse refused a value of the event
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from loader.contract import utcnow


class ErrorType(StrEnum):
    """Why an input failed: the ``error_type`` column. A ``str``, so it compares and is
    stored as its value."""

    WRONG_FIELD_COUNT = "wrong_field_count"
    INVALID_FIELD = "invalid_field"
    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_CSV = "invalid_csv"
    INCOMPLETE_LINE = "incomplete_line"
    ENRICH_ERROR = "enrich_error"
    UNPROCESSABLE = "unprocessable"
    SCHEMA_NOT_ALLOWED = "schema_not_allowed"
    WAREHOUSE_REJECTED = "warehouse_rejected"


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """One rejected input. ``raw`` is exactly what arrived, so it can be replayed after a fix."""

    raw: str
    error_type: ErrorType
    message: str
    source: str = ""
    failed_at: datetime = field(default_factory=utcnow)

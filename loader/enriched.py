"""Parse Snowplow enriched TSV lines into events that follow the contract.

An event is a ``dict`` from column name to value: the scalar atomic columns typed as
``contract.FIELDS`` says (``datetime`` in UTC without tzinfo, ``int``, ``float``, ``bool``,
``str``), plus one entry per entity column holding the parsed JSON (a list of entities for
contexts, one object for the unstruct event). Anything that does not parse becomes a
``FailedEvent`` carrying the raw line and the reason; nothing raises.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from loader.contract import ATOMIC_NAMES, FIELDS, Kind, SchemaKey
from loader.failed import ErrorType, FailedEvent

Event = dict[str, Any]
log = logging.getLogger("persona.parse")

N_FIELDS = len(FIELDS)
REQUIRED = tuple(f.name for f in FIELDS if f.required)  # event_id, collector_tstamp
# Levels of nesting a self-describing JSON value may have (the envelope counts): real
# entities use a handful; orjson cannot write more than 255.
MAX_JSON_DEPTH = 64
# Entities one self-describing field may carry: real events carry a few dozen at most, and a
# bound keeps one line's cost bounded (80,000 contexts in 5 MB cost seconds).
MAX_ENTITIES = 1000


class FieldError(ValueError):
    """A single field's value does not fit its type; the message names the field."""


# The grammar of each typed field, explicit (not whatever Python's converters happen to accept)
# so that another parser (a vectorised one, the warehouse's) can accept exactly the same lines.
# Enrich writes these forms; anything looser is a sign of a broken line.
TSTAMP_RE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
INT_RE = r"-?[0-9]{1,10}"
DOUBLE_RE = r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?"
UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_TSTAMP, _INT, _DOUBLE, _UUID = (
    re.compile(p).fullmatch for p in (TSTAMP_RE, INT_RE, DOUBLE_RE, UUID_RE)
)


def parse_tstamp(value: str) -> datetime:
    if not _TSTAMP(value):
        raise ValueError(f"{value!r} is not a timestamp")
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ts.tzinfo is not None:
        ts = (ts - ts.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
    return ts


def parse_double(value: str) -> float:
    if not _DOUBLE(value):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def parse_int(value: str) -> int:
    if not _INT(value) or not -(2**31) <= (number := int(value)) < 2**31:
        raise ValueError(f"{value!r} is not a 32-bit integer")
    return number


def parse_bool(value: str) -> bool:
    if value == "1":
        return True
    if value == "0":
        return False
    raise ValueError(f"{value!r} is not a boolean (1 or 0)")


def check_depth(value: str, parsed: Any) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH``: the parser accepts far deeper than
    the writers (orjson stops at 255 levels) and the warehouses will store, so a value that is
    read here could otherwise stop the pipeline at a later stage. Counting brackets in C first
    keeps the walk off the usual, shallow value."""
    if value.count("{") + value.count("[") <= MAX_JSON_DEPTH:
        return
    stack: list[tuple[Any, int]] = [(parsed, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _add_entities(columns: dict[str, Any], value: str, prefix: str, with_version: bool) -> None:
    """Split a self-describing JSON field into per-schema entity columns, added to ``columns``
    (contexts and derived_contexts of one schema share a column, in that order)."""
    envelope = orjson.loads(value)
    check_depth(value, envelope)
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise ValueError("expected a self-describing JSON object with 'schema' and 'data'")
    items = envelope["data"]
    if prefix == "unstruct_event":
        if not isinstance(items, dict) or not isinstance(items.get("data"), dict):
            raise ValueError("unstruct_event data must be a self-describing JSON object")
        key = SchemaKey.parse(items.get("schema"))
        columns[key.column(prefix)] = dict(items["data"])
        return
    if not isinstance(items, list):
        raise ValueError("contexts data must be a list of self-describing JSON objects")
    if len(items) > MAX_ENTITIES:
        raise ValueError(f"{len(items)} entities, more than {MAX_ENTITIES}")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise ValueError("each context must be a self-describing JSON object")
        key = SchemaKey.parse(item.get("schema"))
        entity = {"_schema_version": key.version, **item["data"]} if with_version else item["data"]
        columns.setdefault(key.column(prefix), []).append(entity)


_SCALAR: dict[Kind, Callable[[str], Any]] = {
    Kind.TSTAMP: parse_tstamp,
    Kind.INT: parse_int,
    Kind.DOUBLE: parse_double,
    Kind.BOOL: parse_bool,
}
# Work only where there is work: strings pass through, typed fields are converted, and the
# three JSON fields are split into entity columns.
_TYPED = tuple((i, f.name, _SCALAR[f.kind]) for i, f in enumerate(FIELDS) if f.kind in _SCALAR)
_PREFIX = {Kind.CONTEXTS: "contexts", Kind.UNSTRUCT: "unstruct_event"}
_JSON = tuple(
    (i, f.name, _PREFIX[f.kind], f.kind is Kind.CONTEXTS)
    for i, f in enumerate(FIELDS)
    if f.kind in _PREFIX
)
_ATOMIC_INDEX = tuple(i for i, f in enumerate(FIELDS) if f.kind not in _PREFIX)


def parse_fields(values: list[str]) -> Event:
    """Type a list of 131 raw TSV values; raises ``FieldError`` naming the first bad field.

    Every atomic column is present in the result (``None`` when empty), in contract order,
    followed by the entity columns the line carries.
    """
    typed: list[Any] = [v if v != "" else None for v in values]
    name = ""
    try:
        for i, name, convert in _TYPED:  # noqa: B007 - name is read by the handler below
            raw = typed[i]
            if raw is not None:
                typed[i] = convert(raw)
        entities: dict[str, Any] = {}
        for i, name, prefix, with_version in _JSON:  # noqa: B007
            raw = typed[i]
            if raw is not None:
                _add_entities(entities, raw, prefix, with_version)
    except (ValueError, TypeError) as exc:
        raise FieldError(f"{name}: {exc}") from exc
    event = dict(zip(ATOMIC_NAMES, [typed[i] for i in _ATOMIC_INDEX], strict=True))
    event.update(entities)
    return event


def parse_line(line: str, source: str = "") -> Event | FailedEvent:
    """One enriched TSV line (without its newline) to an event or a failed event."""
    values = line.split("\t")
    if len(values) != N_FIELDS:
        return FailedEvent(
            line,
            ErrorType.WRONG_FIELD_COUNT,
            f"expected {N_FIELDS} tab-separated fields, got {len(values)}",
            source,
        )
    try:
        event = parse_fields(values)
    except FieldError as exc:
        kind = (
            ErrorType.INVALID_JSON
            if isinstance(exc.__cause__, json.JSONDecodeError)
            else ErrorType.INVALID_FIELD
        )
        return FailedEvent(line, kind, str(exc), source)
    except Exception as exc:  # a bug here must cost one line, not the load
        return unprocessable(line, exc, source)
    return check_required(event, line, source)


def unprocessable(raw: str, exc: Exception, source: str = "") -> FailedEvent:
    """The failed event for input that a stage could not handle for a reason nobody foresaw
    (a bug, a library's limit): kept with the error, so the load goes on and it can be
    replayed after a fix."""
    log.exception("could not process an input from %s; kept as a failed event", source or "?")
    return FailedEvent(raw, ErrorType.UNPROCESSABLE, f"{type(exc).__name__}: {exc}", source)


def check_required(
    event: Event, raw: str, source: str = "", require_uuid: bool = True
) -> Event | FailedEvent:
    """The two fields no model can do without: the dedupe key and the arrival time.

    Enrich always writes a UUID event_id; ``require_uuid=False`` accepts any id, for exports of
    warehouses that hold other ids.
    """
    for name in REQUIRED:
        if event.get(name) is None:
            return FailedEvent(raw, ErrorType.MISSING_FIELD, f"{name} is required", source)
    event_id = event["event_id"]
    if require_uuid and not _UUID(event_id):
        return FailedEvent(
            raw, ErrorType.INVALID_FIELD, f"event_id: {event_id!r} is not a UUID", source
        )
    return event

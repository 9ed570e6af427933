"""Atomic events exported from a warehouse as CSV with a header row (``csv:PATH``).

The header says what each column is; columns map by name (case-insensitively, so Snowflake's
upper-case exports work too), in any order, and any subset of the atomic columns may be present
(missing ones are null):

- an atomic column (``contract.ATOMIC_FIELDS``) is typed with the TSV parser's converters.
  Booleans may be ``true``/``false`` (any case) or ``1``/``0``; timestamps may carry BigQuery's
  `` UTC`` suffix. An empty cell is null.
- ``load_tstamp`` is ignored: the loader stamps each batch with its own load time.
- ``contexts_<vendor>_<name>_<major>_<minor>_<patch>`` (a JSON array of entity objects) becomes
  the column ``contexts_<vendor>_<name>_<major>``, each entity getting
  ``_schema_version = "<major>-<minor>-<patch>"`` as its first key. Columns already named with
  the major version only are taken as they are. Columns that land on the same target (``_1_0_0``
  and ``_1_0_1``) are concatenated in header order.
- ``unstruct_event_<vendor>_<name>_<major>_<minor>_<patch>`` (a JSON object) becomes
  ``unstruct_event_<vendor>_<name>_<major>``, the object unchanged. If two columns land on the
  same target, the non-null one is kept; a row where both hold a value fails.
- anything else is a ``ConfigError`` raised before the first row is read.

Quirks of real exports that are accepted (the Snowplow web package's test data has both): a
contexts array whose items are arrays of entities (``[[{...}]]``) is flattened one level, and an
unstruct value wrapped in a one-element array (``[{...}]``) is unwrapped. A JSON ``null`` or an
empty array means no entity.

A row that does not fit becomes a ``FailedEvent`` whose ``raw`` is the row written back as one
CSV line (header order), so it can be replayed: ``wrong_field_count``, ``invalid_field`` and
``invalid_json`` (the message names the CSV column), ``invalid_encoding`` (bytes that are not
UTF-8; ``raw`` shows them as ``\\xNN`` escapes), ``missing_field`` (no event_id or
collector_tstamp; unlike TSV, an event_id need not be a UUID), and ``invalid_csv`` (a row the csv
module refuses, e.g. a cell over 64 MiB; its ``raw`` is empty, the message gives the line). The
file is streamed row by row; nothing raises after the header has been accepted.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from loader.contract import ATOMIC_FIELDS, ATOMIC_NAMES, LOAD_TSTAMP, Kind
from loader.enriched import (
    Event,
    FieldError,
    check_depth,
    check_required,
    parse_bool,
    parse_double,
    parse_int,
    parse_tstamp,
)
from loader.errors import ConfigError
from loader.failed import ErrorType, FailedEvent
from loader.privacy import Privacy

# The longest cell accepted. The csv module's default (128 KiB) is too small for a page with
# many large entities; the limit is process-wide, so it is only ever raised, never lowered.
_FIELD_LIMIT = 64 * 1024 * 1024
# Entity columns as warehouses name them; the rest is restricted to what SchemaKey.column
# produces, which is also what the sinks accept as a column name.
_ENTITY = re.compile(
    r"^(?P<prefix>contexts|unstruct_event)_(?P<rest>[a-z0-9_]+?)_(?P<major>[0-9]+)"
    r"(?:_(?P<minor>[0-9]+)_(?P<patch>[0-9]+))?$"
)
_SELF_DESCRIBING = {"contexts", "unstruct_event", "derived_contexts"}


def _parse_csv_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a boolean (expected true/false or 1/0)") from None


def _parse_csv_tstamp(value: str) -> datetime:
    if value.endswith(" UTC"):  # BigQuery writes TIMESTAMP values as '... UTC'
        value = value[:-4]
    return parse_tstamp(value)


_CONVERTERS: dict[Kind, Callable[[str], Any] | None] = {
    Kind.STRING: None,
    Kind.TSTAMP: _parse_csv_tstamp,
    Kind.INT: parse_int,
    Kind.DOUBLE: parse_double,
    Kind.BOOL: _parse_csv_bool,
}
_ATOMIC_CONVERTERS = {f.name: _CONVERTERS[f.kind] for f in ATOMIC_FIELDS}


@dataclass(frozen=True, slots=True)
class _EntityColumn:
    index: int
    column: str  # as in the file
    target: str  # as in atomic.events
    is_contexts: bool
    version: str | None  # "<major>-<minor>-<patch>", or None to pass entities through


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to do with each column of a header."""

    width: int
    columns: tuple[str, ...]
    atomic: tuple[tuple[int, str, Callable[[str], Any] | None], ...]
    entities: tuple[_EntityColumn, ...]


def _make_plan(header: list[str], path: str) -> _Plan:
    if any(_has_surrogates(c) for c in header):
        raise ConfigError(f"csv:{path}: the header row is not UTF-8")
    atomic: list[tuple[int, str, Callable[[str], Any] | None]] = []
    entities: list[_EntityColumn] = []
    unknown: list[str] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for i, original in enumerate(header):
        name = original.strip().lower()
        if name in seen:
            duplicates.append(original)
        seen.add(name)
        if name in _ATOMIC_CONVERTERS:
            atomic.append((i, name, _ATOMIC_CONVERTERS[name]))
        elif name == LOAD_TSTAMP:
            continue
        elif m := _ENTITY.match(name):
            prefix, major = m["prefix"], int(m["major"])
            version = f"{major}-{int(m['minor'])}-{int(m['patch'])}" if m["minor"] else None
            entities.append(
                _EntityColumn(
                    i, original, f"{prefix}_{m['rest']}_{major}", prefix == "contexts", version
                )
            )
        else:
            unknown.append(original)
    if unknown:
        hint = ""
        if _SELF_DESCRIBING & {u.strip().lower() for u in unknown}:
            hint = (
                " (self-describing JSON columns are not read from CSV; export one column "
                "per entity schema)"
            )
        raise ConfigError(
            f"csv:{path}: unknown column(s) {', '.join(map(repr, unknown))}{hint}; expected "
            f"atomic event columns, {LOAD_TSTAMP}, or entity columns named "
            "contexts_<vendor>_<name>_<major>[_<minor>_<patch>] or "
            "unstruct_event_<vendor>_<name>_<major>[_<minor>_<patch>]"
        )
    if duplicates:
        raise ConfigError(
            f"csv:{path}: column(s) {', '.join(map(repr, duplicates))} appear more than once"
        )
    return _Plan(len(header), tuple(header), tuple(atomic), tuple(entities))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unescape(cell: str) -> str:
    """A cell decoded with surrogateescape, with its undecodable bytes shown as ``\\xNN``."""
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def to_csv_line(row: list[str]) -> str:
    """One row as a CSV line without its line terminator (cells with newlines are quoted)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(row)
    return buf.getvalue()[:-2]


def _contexts(value: Any, version: str | None) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected a JSON array of entity objects")
    entities: list[dict[str, Any]] = []
    for item in value:
        items = item if isinstance(item, list) else [item]  # [[{...}]]: flatten one level
        for entity in items:
            if not isinstance(entity, dict):
                raise ValueError("expected a JSON array of entity objects")
            if version is not None:
                entity = {"_schema_version": version, **entity}
                entity["_schema_version"] = version  # the column's version, kept first
            entities.append(entity)
    return entities


def _unstruct(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list) and len(value) <= 1:  # [{...}]: unwrap; [] is no event
        value = value[0] if value else None
    if value is not None and not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _typed(row: list[str], plan: _Plan) -> Event:
    """The event for a row of the right width; raises ``FieldError`` naming the CSV column."""
    event: Event = dict.fromkeys(ATOMIC_NAMES)
    column = ""
    try:
        for i, column, convert in plan.atomic:  # column is also read by the handler below
            value = row[i]
            if value != "":
                event[column] = value if convert is None else convert(value)
        entities: dict[str, Any] = {}
        for spec in plan.entities:
            value = row[spec.index]
            if value == "":
                continue
            column = spec.column
            parsed = orjson.loads(value)
            check_depth(value, parsed)
            if spec.is_contexts:
                found = _contexts(parsed, spec.version)
                if found:
                    entities.setdefault(spec.target, []).extend(found)
            elif (obj := _unstruct(parsed)) is not None:
                if spec.target in entities:
                    raise ValueError(f"another column also holds {spec.target}")
                entities[spec.target] = obj
    except (ValueError, TypeError) as exc:
        raise FieldError(f"{column}: {exc}") from exc
    event.update(entities)
    return event


def parse_row(row: list[str], plan: _Plan, source: str) -> Event | FailedEvent:
    """One data row (a non-empty list of cells) to an event or a failed event."""
    if _has_surrogates("".join(row)):
        bad = [c for c, cell in zip(plan.columns, row, strict=False) if _has_surrogates(cell)]
        return FailedEvent(
            to_csv_line([_unescape(cell) for cell in row]),
            ErrorType.INVALID_ENCODING,
            f"not UTF-8 in column(s) {', '.join(map(_unescape, bad)) or '(beyond the header)'}",
            source,
        )
    if len(row) != plan.width:
        return FailedEvent(
            to_csv_line(row),
            ErrorType.WRONG_FIELD_COUNT,
            f"expected {plan.width} comma-separated cells as in the header, got {len(row)}",
            source,
        )
    try:
        event = _typed(row, plan)
    except FieldError as exc:
        invalid_json = isinstance(exc.__cause__, json.JSONDecodeError)
        kind = ErrorType.INVALID_JSON if invalid_json else ErrorType.INVALID_FIELD
        return FailedEvent(to_csv_line(row), kind, str(exc), source)
    # In an export the id is whatever the warehouse holds (Snowplow's own web-model test data
    # has 24 non-UUID ids, and its expected page views contain them): any non-empty id is kept.
    checked = check_required(event, "", source, require_uuid=False)
    if isinstance(checked, FailedEvent):
        return dataclasses.replace(checked, raw=to_csv_line(row))  # only written on failure
    return checked


@dataclass
class CsvFileSource:
    """``csv:PATH``: a warehouse export of atomic events with a header row. Finite.

    The header is checked when the source is made, so a file with unknown columns is refused
    before anything is written. ``load_tstamp`` in the file is ignored: the loader sets its own.
    Bytes that are not UTF-8 make their row an ``invalid_encoding`` failed event (decoding with
    ``errors="replace"`` would load them silently altered).
    """

    path: str
    # Applied to the cells, before parsing: a failed row's raw CSV line is then protected too
    # (the pipeline could not find a user id in a line of unknown columns).
    privacy: Privacy | None = None
    _header_plan: _Plan | None = field(default=None, init=False, repr=False)
    finite = True  # a bulk load: the sink may trade memory for fewer checkpoints

    @property
    def protects_privacy(self) -> bool:
        return self.privacy is not None

    @property
    def name(self) -> str:
        return f"csv:{self.path}"

    def __post_init__(self) -> None:
        with self._open() as fh:
            header = next(csv.reader(fh), None)
        self._header_plan = None if header is None else _make_plan(header, self.path)

    def _open(self) -> io.TextIOWrapper:
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
        try:
            # utf-8-sig drops a byte-order mark; surrogateescape keeps bad bytes recognisable
            # so that their row fails instead of being silently altered.
            return Path(self.path).open(encoding="utf-8-sig", errors="surrogateescape", newline="")
        except OSError as exc:
            raise ConfigError(f"{self.name}: cannot read {self.path!r}: {exc.strerror}") from exc

    def __iter__(self) -> Iterator[Event | FailedEvent]:
        source = self.name
        with self._open() as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:  # an empty file: no events
                return
            plan = self._header_plan
            if plan is None or list(plan.columns) != header:  # the file changed since
                plan = _make_plan(header, self.path)
            protect = self.privacy.cells(header) if self.privacy is not None else None
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    # The reader has skipped the row and cannot give it back: say where it was.
                    yield FailedEvent(
                        "", ErrorType.INVALID_CSV, f"line {reader.line_num}: {exc}", source
                    )
                    continue
                if row:  # blank lines are not events
                    yield parse_row(row if protect is None else protect(row), plan, source)

"""Micro-batches: events gathered column by column, handed to a sink as one Arrow table.

Columns are built as Python lists and converted every ``FLUSH_EVENTS`` events, which is far
cheaper than one Arrow conversion per event and keeps few events as dicts (about 8 KB each)
in memory at once. Entity columns are carried as JSON text: DuckDB stores them in JSON
columns and Snowflake in VARIANT, and both parse text on the way in. A source that parses
column by column (``columnar.Chunk``, the enriched TSV file source) adds its events as Arrow
tables already built.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loader.columnar import Chunk
from loader.contract import ARROW_TYPES, ATOMIC_FIELDS, ATOMIC_NAMES, LOAD_TSTAMP, utcnow
from loader.enriched import Event, unprocessable
from loader.failed import FailedEvent

_atomic_values = operator.itemgetter(*ATOMIC_NAMES)
_DUMPS = orjson.dumps  # UTF-8 JSON bytes, which Arrow takes as strings
FLUSH_EVENTS = 1000


@dataclass
class Batch:
    """Events and failed events collected since the last commit."""

    events: list[Event] = field(default_factory=list)
    failed: list[FailedEvent] = field(default_factory=list)
    # the source position after the batch's last item, for sinks that resume from it
    offset_token: str | None = None
    # good events parsed column by column (atomic columns, then entity columns as JSON text)
    tables: list[pa.Table] = field(default_factory=list)
    # Arrow bytes of ``tables`` and raw bytes of ``failed``, kept as items arrive
    _table_bytes: int = 0
    _table_rows: int = 0
    _failed_bytes: int = 0

    def add(self, item: Event | FailedEvent | Chunk) -> None:
        if isinstance(item, FailedEvent):
            self.failed.append(item)
            self._failed_bytes += len(item.raw)
        elif isinstance(item, Chunk):
            if item.table.num_rows:
                self._add_table(item.table)
            self.failed.extend(item.failed)
            self._failed_bytes += sum(len(f.raw) for f in item.failed)
        else:
            self.events.append(item)
            if len(self.events) >= FLUSH_EVENTS:
                self.seal()

    def seal(self) -> None:
        """Turn the events gathered as dicts into a table now. An event Arrow refuses (a value
        no parser should have let through) becomes a failed event, and the rest are kept: one
        bad event must not cost its batch, nor stop the loader on every restart."""
        if not self.events:
            return
        events, self.events = self.events, []
        try:
            self._add_table(_events_table(events, self.entity_columns(events)))
            return
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
        good = []
        for event in events:
            try:
                _events_table([event], self.entity_columns([event]))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                failed = unprocessable(_as_text(event), exc)
                self.failed.append(failed)
                self._failed_bytes += len(failed.raw)
            else:
                good.append(event)
        if good:
            self._add_table(_events_table(good, self.entity_columns(good)))

    def _add_table(self, table: pa.Table) -> None:
        self.tables.append(table)
        self._table_bytes += table.nbytes
        self._table_rows += table.num_rows

    @property
    def nbytes(self) -> int:
        """About what the batch weighs: its Arrow tables, the raw input of its failed events,
        and events not yet in a table at the average size of those that are (2 KB before)."""
        per_event = self._table_bytes / self._table_rows if self._table_rows else 2048
        return self._table_bytes + self._failed_bytes + int(len(self.events) * per_event)

    @property
    def good(self) -> int:
        """How many good events the batch holds."""
        rows: int = sum(t.num_rows for t in self.tables)
        return len(self.events) + rows

    def __len__(self) -> int:
        return self.good + len(self.failed)

    def newest_collector_tstamp(self) -> datetime | None:
        newest = max((e["collector_tstamp"] for e in self.events), default=None)
        for table in self.tables:
            value = pc.max(table.column("collector_tstamp")).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
        return newest

    def event_dicts(self) -> list[Event]:
        """Every good event as the per-line parser gives it (for sinks that take rows)."""
        events: list[Event] = []
        for table in self.tables:
            entity = table.column_names[len(ATOMIC_FIELDS) :]
            for row in table.to_pylist():
                for name in entity:
                    if row[name] is None:
                        del row[name]
                    else:
                        row[name] = orjson.loads(row[name])
                events.append(row)
        return events + self.events

    def entity_columns(self, events: list[Event] | None = None) -> list[str]:
        """Entity columns in order of first appearance (of ``events`` alone, if given)."""
        seen: dict[str, None] = {}
        n_atomic = len(ATOMIC_NAMES)
        if events is None:
            events = self.events
            for table in self.tables:
                seen.update(dict.fromkeys(table.column_names[n_atomic:]))
        for event in events:
            if len(event) > n_atomic:
                for name in itertools.islice(event, n_atomic, None):
                    seen[name] = None
        return list(seen)

    def to_arrow(self, loaded_at: datetime | None = None) -> pa.Table:
        """The events as a table: atomic columns in contract order, then entity columns."""
        loaded_at = loaded_at or utcnow()
        self.seal()
        parts = list(self.tables)
        if not parts:
            parts.append(_events_table([], []))
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="default")
        stamps = pa.array([loaded_at] * table.num_rows, type=pa.timestamp("us"))
        return table.add_column(len(ATOMIC_FIELDS), LOAD_TSTAMP, stamps)


def _as_text(event: Event) -> str:
    """An event as JSON text for a failed event's ``raw``, whatever it holds."""
    try:
        return orjson.dumps(event, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except TypeError:  # too deep for the writer: the text is the evidence that is left
        return repr(event)[:1_000_000]


def _events_table(events: list[Event], entity_columns: list[str]) -> pa.Table:
    """Events as a table without ``load_tstamp``: atomic columns, then entity columns."""
    rows = [_atomic_values(e) for e in events]
    columns = zip(*rows, strict=True) if rows else ([] for _ in ATOMIC_FIELDS)
    arrays = [
        pa.array(column, type=ARROW_TYPES[f.kind])
        for f, column in zip(ATOMIC_FIELDS, columns, strict=True)
    ]
    names = list(ATOMIC_NAMES)
    for column in entity_columns:
        values = [e.get(column) for e in events]
        arrays.append(pa.array([None if v is None else _DUMPS(v) for v in values], pa.string()))
        names.append(column)
    return pa.Table.from_arrays(arrays, names=names)

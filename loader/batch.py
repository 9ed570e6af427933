"""Micro-batches: events gathered column by column, handed to a sink as one Arrow table.

Columns are built as Python lists and converted once per batch, which is far cheaper than one
Arrow conversion per event. Entity columns are carried as JSON text: DuckDB stores them in JSON
columns and Snowflake in VARIANT, and both parse text on the way in. A source that parses
column by column (``columnar.Chunk``, the enriched TSV file source) adds its events as Arrow
tables already built; a batch holds one kind or the other.
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
from loader.contract import ATOMIC_FIELDS, LOAD_TSTAMP, Kind, utcnow
from loader.enriched import Event
from loader.failed import FailedEvent

ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.STRING: pa.string(),
    Kind.TSTAMP: pa.timestamp("us"),
    Kind.INT: pa.int64(),
    Kind.DOUBLE: pa.float64(),
    Kind.BOOL: pa.bool_(),
}
ATOMIC_SCHEMA = pa.schema(
    [pa.field(f.name, ARROW_TYPES[f.kind]) for f in ATOMIC_FIELDS]
    + [pa.field(LOAD_TSTAMP, pa.timestamp("us"))]
)
_ATOMIC_NAMES = frozenset(f.name for f in ATOMIC_FIELDS)
_atomic_values = operator.itemgetter(*(f.name for f in ATOMIC_FIELDS))
_DUMPS = orjson.dumps  # UTF-8 JSON bytes, which Arrow takes as strings


@dataclass
class Batch:
    """Events and failed events collected since the last commit."""

    events: list[Event] = field(default_factory=list)
    failed: list[FailedEvent] = field(default_factory=list)
    # the source position after the batch's last item, for sinks that resume from it
    offset_token: str | None = None
    # good events parsed column by column (atomic columns, then entity columns as JSON text)
    tables: list[pa.Table] = field(default_factory=list)

    def add(self, item: Event | FailedEvent | Chunk) -> None:
        if isinstance(item, FailedEvent):
            self.failed.append(item)
        elif isinstance(item, Chunk):
            if item.table.num_rows:
                self.tables.append(item.table)
            self.failed.extend(item.failed)
        else:
            self.events.append(item)

    @property
    def good(self) -> int:
        """How many good events the batch holds."""
        return len(self.events) + sum(t.num_rows for t in self.tables)

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
        events = list(self.events)
        for table in self.tables:
            entity = table.column_names[len(ATOMIC_FIELDS) :]
            for row in table.to_pylist():
                for name in entity:
                    if row[name] is None:
                        del row[name]
                    else:
                        row[name] = orjson.loads(row[name])
                events.append(row)
        return events

    def entity_columns(self) -> list[str]:
        seen: dict[str, None] = {}
        n_atomic = len(_ATOMIC_NAMES)
        for table in self.tables:
            seen.update(dict.fromkeys(table.column_names[n_atomic:]))
        for event in self.events:
            if len(event) > n_atomic:
                for name in itertools.islice(event, n_atomic, None):
                    seen[name] = None
        return list(seen)

    def to_arrow(self, loaded_at: datetime | None = None) -> pa.Table:
        """The events as a table: atomic columns in contract order, then entity columns."""
        loaded_at = loaded_at or utcnow()
        if self.tables:
            return self._tables_to_arrow(loaded_at)
        events = self.events
        rows = [_atomic_values(e) for e in events]
        columns = zip(*rows, strict=True) if rows else ([] for _ in ATOMIC_FIELDS)
        arrays = [
            pa.array(column, type=ARROW_TYPES[f.kind])
            for f, column in zip(ATOMIC_FIELDS, columns, strict=True)
        ]
        arrays.append(pa.array([loaded_at] * len(events), type=pa.timestamp("us")))
        names = [*ATOMIC_SCHEMA.names]
        for column in self.entity_columns():
            values = [e.get(column) for e in events]
            arrays.append(pa.array([None if v is None else _DUMPS(v) for v in values], pa.string()))
            names.append(column)
        return pa.Table.from_arrays(arrays, names=names)

    def _tables_to_arrow(self, loaded_at: datetime) -> pa.Table:
        if self.events:
            raise ValueError("a batch holds events or tables, not both")
        table = (
            self.tables[0]
            if len(self.tables) == 1
            else pa.concat_tables(self.tables, promote_options="default")
        )
        n_atomic = len(ATOMIC_FIELDS)
        stamps = pa.array([loaded_at] * table.num_rows, type=pa.timestamp("us"))
        return table.add_column(n_atomic, LOAD_TSTAMP, stamps)

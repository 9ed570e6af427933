"""Micro-batches: events gathered column by column, handed to a sink as one Arrow table.

Columns are built as Python lists and converted once per batch, which is far cheaper than one
Arrow conversion per event. Entity columns are carried as JSON text: DuckDB stores them in JSON
columns and Snowflake in VARIANT, and both parse text on the way in.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import pyarrow as pa

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

    def add(self, item: Event | FailedEvent) -> None:
        if isinstance(item, FailedEvent):
            self.failed.append(item)
        else:
            self.events.append(item)

    def __len__(self) -> int:
        return len(self.events) + len(self.failed)

    def entity_columns(self) -> list[str]:
        seen: dict[str, None] = {}
        n_atomic = len(_ATOMIC_NAMES)
        for event in self.events:
            if len(event) > n_atomic:
                for name in itertools.islice(event, n_atomic, None):
                    seen[name] = None
        return list(seen)

    def to_arrow(self, loaded_at: datetime | None = None) -> pa.Table:
        """The events as a table: atomic columns in contract order, then entity columns."""
        loaded_at = loaded_at or utcnow()
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

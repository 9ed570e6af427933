"""Which entity schemas may become columns of ``atomic.events``.

Snowplow loads only the schemas its Iglu registry knows; Persona has no registry, so without a
policy one request naming 3,000 made-up schemas would add 3,000 columns (and slow every later
``dbt build``). A column is admitted when every schema that made it matches ``allow`` (globs
over ``vendor/name``; a bare ``vendor`` means all of its schemas) and, for a column the table
does not have yet, while fewer than ``max_new_per_hour`` new columns were admitted in the last
hour and the table has fewer than ``max_columns`` entity columns. An event carrying a schema
outside the policy becomes a failed event (``schema_not_allowed``) holding the whole event.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loader.contract import ATOMIC_FIELDS, COLUMN_SCHEMAS, snake
from loader.errors import ConfigError
from loader.failed import ErrorType, FailedEvent

N_ATOMIC = len(ATOMIC_FIELDS)
MEMO = 50_000  # verdicts remembered
_PATTERN = re.compile(r"[A-Za-z0-9_.*?\[\]-]+(/[A-Za-z0-9_.*?\[\]-]+)?")


@dataclass
class SchemaPolicy:
    allow: tuple[str, ...] = ("*",)
    max_new_per_hour: int = 50
    max_columns: int = 300
    known: set[str] = field(default_factory=set)  # the entity columns the table has
    clock: Callable[[], float] = time.monotonic
    _admitted: deque[float] = field(default_factory=deque)
    _verdicts: dict[str, str] = field(default_factory=dict)  # column -> "" or the reason
    _created: set[str] = field(default_factory=set)  # known columns some stored event has

    def __post_init__(self) -> None:
        bad = [p for p in self.allow if not _PATTERN.fullmatch(p)]
        if bad:
            raise ConfigError(
                f"schemas_allowed: {bad} are not vendor/name globs (e.g. com.acme/*, "
                "com.snowplowanalytics.*/*, *)"
            )
        for key in ("max_new_per_hour", "max_columns"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be 0 or more, got {getattr(self, key)}")
        self._column_res = [_column_re(p) for p in self.allow]
        self._created = set(self.known)

    def refusal(self, column: str) -> str:
        """Why ``column`` may not be stored, or ``""``."""
        listed = self._verdicts.get(column)
        if listed is None:
            listed = self._listed(column)
            if len(self._verdicts) >= MEMO:  # a flood of made-up schemas must not grow memory
                self._verdicts.clear()
            self._verdicts[column] = listed
        if listed or column in self.known:
            return listed
        now = self.clock()
        while self._admitted and self._admitted[0] <= now - 3600:
            self._admitted.popleft()
        if len(self.known) >= self.max_columns:
            return (f"{column}: the events table has {len(self.known)} entity columns "
                    f"(max_entity_columns={self.max_columns})")  # fmt: skip
        if len(self._admitted) >= self.max_new_per_hour:
            return (f"{column}: {len(self._admitted)} new entity columns in the last hour "
                    f"(max_new_columns_per_hour={self.max_new_per_hour})")  # fmt: skip
        self._admitted.append(now)
        self.known.add(column)
        return ""

    def _listed(self, column: str) -> str:
        """The allow-list's verdict, which never changes for a column (memoized)."""
        schemas = COLUMN_SCHEMAS.get(column)
        if schemas:
            outside = sorted(f"{v}/{n}" for v, n in schemas if not self._allowed(v, n))
            if outside:
                return f"{', '.join(outside)}: not in schemas_allowed {list(self.allow)}"
        elif not any(r.fullmatch(column) for r in self._column_res):
            return f"{column}: not in schemas_allowed {list(self.allow)}"
        return ""

    def _refund(self, columns: Iterable[str]) -> None:
        """New columns admitted only for events refused anyway: they were never created, and
        must not use up the hour's budget (one hostile event would otherwise spend it)."""
        for column in columns:
            if column in self.known and column not in self._created:
                self.known.discard(column)
                if self._admitted:
                    self._admitted.pop()

    def _allowed(self, vendor: str, name: str) -> bool:
        for pattern in self.allow:
            v, _, n = pattern.partition("/")
            if fnmatch.fnmatchcase(vendor, v) and fnmatch.fnmatchcase(name, n or "*"):
                return True
        return False

    def apply(self, item: Any) -> Any:
        """An event, a failed event or a chunk, with the events outside the policy failed."""
        if isinstance(item, FailedEvent):
            return item
        if isinstance(item, dict):
            if len(item) <= N_ATOMIC:
                return item
            columns = list(item)[N_ATOMIC:]
            reasons = [r for c in columns if (r := self.refusal(c))]
            if not reasons:
                self._created.update(columns)
                return item
            self._refund(columns)
            raw = orjson.dumps(item, default=str).decode()
            return FailedEvent(raw, ErrorType.SCHEMA_NOT_ALLOWED, "; ".join(reasons))
        return self._apply_chunk(item)

    def _apply_chunk(self, chunk: Any) -> Any:
        table: pa.Table = chunk.table
        columns = table.column_names[N_ATOMIC:]
        refused = {c: r for c in columns if (r := self.refusal(c))}
        if not refused:
            self._created.update(columns)
            return chunk
        hit = None
        # by position: a lookup by name scans the names, and a flood brings thousands
        for column, values in zip(table.column_names, table.columns, strict=True):
            if column in refused:
                valid = values.is_valid()
                hit = valid if hit is None else pc.or_(hit, valid)
        rows = table.filter(hit)
        failed = []
        for row in rows.to_pylist():
            reasons = [refused[c] for c in refused if row[c] is not None]
            event = {k: orjson.loads(v) if i >= N_ATOMIC else v
                     for i, (k, v) in enumerate(row.items()) if v is not None}  # fmt: skip
            raw = orjson.dumps(event, default=str).decode()
            failed.append(FailedEvent(raw, ErrorType.SCHEMA_NOT_ALLOWED, "; ".join(reasons)))
        keep = pc.invert(hit)
        kept = table.filter(keep)
        stored = {
            c: i
            for i, (c, values) in enumerate(zip(kept.column_names, kept.columns, strict=True))
            if i >= N_ATOMIC and c not in refused and values.null_count < len(kept)
        }
        self._created.update(stored)
        self._refund(c for c in columns if c not in refused and c not in stored)
        kept = kept.select([*range(N_ATOMIC), *stored.values()])  # by position, as above
        return replace(
            chunk,
            table=kept,
            good_items=chunk.good_items.filter(keep),
            failed=[*chunk.failed, *failed],
            failed_items=[*chunk.failed_items, *chunk.good_items.filter(hit).to_pylist()],
        )


def _column_re(pattern: str) -> re.Pattern[str]:
    """A column-name pattern for columns whose schemas this process has not seen (an export
    with entity columns already named): vendor and name as ``SchemaKey.column`` writes them."""
    vendor, _, name = pattern.partition("/")

    def part(glob: str, camel: bool) -> str:
        pieces = re.split(r"([*?])", glob)
        return "".join(
            "[a-z0-9_]*" if p == "*" else "[a-z0-9_]" if p == "?" else re.escape(snake(p, camel))
            for p in pieces
        )

    return re.compile(
        rf"(contexts|unstruct_event)_{part(vendor, False)}_{part(name or '*', True)}_[0-9]+"
    )

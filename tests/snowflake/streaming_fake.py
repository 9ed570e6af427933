"""A fake of Snowpipe Streaming (the ``snowpipe-streaming`` 1.9 SDK) as unkind as the real one,
with fakesnow as the table it writes.

What it copies from the SDK's source (``snowflake/ingest/streaming/*.py`` of the wheel):
- ``append_rows`` serializes the rows to JSON and returns: fire-and-forget. Nothing about a
  row's columns or values is checked then; only a value JSON cannot encode raises
  (``ValueError``, as the SDK's ``Failed to serialize rows to JSON``).
- The server commits later (``commit_delay`` seconds of the fake's clock). A row it cannot
  take (an unknown column, a value the column's type refuses) is skipped; the offset token
  advances anyway and the error shows only in the channel status (``rows_error_count``,
  ``last_error_message``, ``last_error_offset_token_upper_bound``).
- ``wait_for_commit`` polls the status once a second (here: the fake clock advances one second
  per poll, no real sleep), returns once the checker accepts the committed token, raises
  ``StreamingIngestError``-like ``INVALID_CHANNEL_ERROR`` when the status is not SUCCESS and
  ``TimeoutError`` after ``timeout_seconds``. An append that timed out still commits later.
- Reopening a channel by name supersedes the previous instance: its appends not yet committed
  are dropped (the server never acknowledges them) and the old object is closed.

The differences that remain are listed in docs/snowflake.md ("The fake and the SDK").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa

DEFAULT_COMMIT_DELAY = 2  # seconds of the fake clock between an append and its commit


class FakeErrorCode:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeStreamingError(Exception):
    """Shaped as ``StreamingIngestError``: ``error_code.name`` is the enum member's name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.error_code = FakeErrorCode(code)
        self.message = message


def _encode(value: Any) -> Any:
    """msgspec's JSON encoding of the types the SDK documents for row values."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


@dataclass
class Status:
    """The attributes of ``ChannelStatus`` the sink reads."""

    channel_name: str
    status_code: str
    latest_committed_offset_token: str | None
    rows_inserted_count: int
    rows_parsed_count: int
    rows_error_count: int
    last_error_offset_token_upper_bound: str | None
    last_error_message: str | None


@dataclass
class _Append:
    lines: list[str]
    end_offset_token: str | None
    commit_at: int
    columns: frozenset[str]  # what the pipe saw when the channel opened
    generation: int


@dataclass
class _ChannelState:
    committed: str | None = None
    generation: int = 0
    inserted: int = 0
    parsed: int = 0
    errors: int = 0
    last_error_token: str | None = None
    last_error_message: str | None = None
    status_code: str = "SUCCESS"
    pending: list[_Append] = field(default_factory=list)


class FakeServer:
    """Snowflake's side: the tables (fakesnow) and each channel's committed state, with a clock
    that only the fake's waits move (``tick``)."""

    def __init__(self, cursor: Any, database: str, schema: str) -> None:
        self.cursor, self.database, self.schema = cursor, database.upper(), schema.upper()
        self.clock = 0
        self.commit_delay = DEFAULT_COMMIT_DELAY
        self.channels: dict[tuple[str, str], _ChannelState] = {}
        self.missing_tables: set[str] = set()

    def columns(self, table: str) -> dict[str, str]:
        self.cursor.execute(f"describe table {self.database}.{self.schema}.{table}")
        return {row[0].upper(): str(row[1]).upper() for row in self.cursor.fetchall()}

    def has_table(self, table: str) -> bool:
        if table.upper() in self.missing_tables:
            return False
        self.cursor.execute(
            "select count(*) from information_schema.tables where table_schema = %s "
            "and table_name = %s",
            (self.schema, table.upper()),
        )
        return bool(self.cursor.fetchone()[0])

    def tick(self, seconds: int = 1) -> None:
        self.clock += seconds
        for (table, _name), state in self.channels.items():
            due = [a for a in state.pending if a.commit_at <= self.clock]
            state.pending = [a for a in state.pending if a.commit_at > self.clock]
            for append in due:
                self._commit(table, state, append)

    def flush(self) -> None:
        """Commit everything pending (a close that waits for the flush)."""
        self.tick(max([0] + [a.commit_at - self.clock for s in self.channels.values()
                             for a in s.pending]))  # fmt: skip

    def _commit(self, table: str, state: _ChannelState, append: _Append) -> None:
        types = self.columns(table)
        good: list[dict[str, Any]] = []
        for line in append.lines:
            row = json.loads(line)
            error = _row_error(row, types, append.columns)
            if error is None:
                good.append(row)
            else:
                state.errors += 1
                state.last_error_message = error
                state.last_error_token = append.end_offset_token
        if good:
            _insert(self.cursor, f"{self.database}.{self.schema}.{table}", types, good)
        state.inserted += len(good)
        state.parsed += len(append.lines)
        if append.end_offset_token is not None:
            state.committed = append.end_offset_token


def _row_error(row: dict[str, Any], types: dict[str, str], seen: frozenset[str]) -> str | None:
    unknown = sorted(set(row) - seen)
    if unknown:
        return f"The given row cannot be converted: unknown columns {unknown}"
    for name, value in row.items():
        if value is not None and _convert(value, types[name]) is _INVALID:
            return (
                f"The given row cannot be converted to the internal format: column {name} of "
                f"type {types[name]} cannot take {value!r}"
            )
    return None


_INVALID = object()


def _convert(value: Any, kind: str) -> Any:
    """The value a column of Snowflake type ``kind`` stores, or ``_INVALID``."""
    try:
        if kind.startswith(("VARCHAR", "TEXT", "STRING")):
            return value if isinstance(value, str) else _INVALID
        if kind.startswith("TIMESTAMP"):
            if not isinstance(value, str):
                return _INVALID
            return datetime.fromisoformat(value).replace(tzinfo=None)
        if kind.startswith(("NUMBER", "DECIMAL", "INT", "BIGINT")):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                return _INVALID
            if ",0)" in kind.replace(" ", "") or "INT" in kind:
                return round(float(value))
            return Decimal(str(value))
        if kind.startswith(("FLOAT", "DOUBLE", "REAL")):
            if isinstance(value, bool):
                return _INVALID
            return float(value)
        if kind.startswith("BOOLEAN"):
            return value if isinstance(value, bool) else _INVALID
        if kind.startswith("ARRAY"):
            return json.dumps(value if isinstance(value, list) else [value])
        if kind.startswith("OBJECT"):
            return json.dumps(value) if isinstance(value, dict) else _INVALID
        if kind.startswith(("VARIANT", "JSON")):
            return json.dumps(value)
    except (TypeError, ValueError):
        return _INVALID
    raise AssertionError(f"the fake does not know the column type {kind}")


_ARROW = {"VARCHAR": pa.string(), "TIMESTAMP": pa.timestamp("us"), "FLOAT": pa.float64(),
          "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}  # fmt: skip


def _arrow_type(kind: str, values: list[Any]) -> pa.DataType:
    for prefix, arrow in _ARROW.items():
        if kind.startswith(prefix):
            return arrow
    if any(isinstance(v, Decimal) for v in values):
        return pa.decimal128(38, 9)
    if kind.startswith(("NUMBER", "DECIMAL", "INT", "BIGINT")):
        return pa.int64()
    return pa.string()  # semi-structured: JSON text, cast by DuckDB into fakesnow's JSON column


def _insert(cursor: Any, qualified: str, types: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """The rows into the table as Snowflake's ingestion would store them: one Arrow insert into
    fakesnow's DuckDB (the server side is not SQL, so it does not go through fakesnow's
    translation)."""
    names = sorted({name for row in rows for name in row})
    arrays = []
    for name in names:
        values = [None if r.get(name) is None else _convert(r[name], types[name]) for r in rows]
        arrays.append(pa.array(values, type=_arrow_type(types[name], values)))
    batch = pa.Table.from_arrays(arrays, names=names)
    duck = cursor._duck_conn  # fakesnow's DuckDB: the emulated storage
    duck.register("_fake_streaming_rows", batch)
    try:
        duck.execute(f"insert into {qualified} by name select * from _fake_streaming_rows")
    finally:
        duck.unregister("_fake_streaming_rows")


class FakeChannel:
    def __init__(self, server: FakeServer, table: str, name: str, state: _ChannelState) -> None:
        self.server, self.table, self.name, self.state = server, table, name, state
        self.generation = state.generation
        self.columns = frozenset(server.columns(table))  # the pipe reads them when it opens
        self.closed = False
        self.appended = 0

    def _check_open(self) -> None:
        if self.closed or self.generation != self.state.generation:
            raise FakeStreamingError("CLOSED_CHANNEL_ERROR", f"channel {self.name} is closed")

    def append_rows(
        self, rows: list[dict[str, Any]], start_offset_token: str | None = None,
        end_offset_token: str | None = None,
    ) -> None:  # fmt: skip
        self._check_open()
        try:
            lines = [json.dumps(row, default=_encode) for row in rows]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Failed to serialize rows to JSON: {exc}") from exc
        self.appended += len(rows)
        self.state.pending.append(_Append(lines, end_offset_token,
                                          self.server.clock + self.server.commit_delay,
                                          self.columns, self.generation))  # fmt: skip

    def get_channel_status(self) -> Status:
        self._check_open()
        s = self.state
        return Status(self.name, s.status_code, s.committed, s.inserted, s.parsed, s.errors,
                      s.last_error_token, s.last_error_message)  # fmt: skip

    def get_latest_committed_offset_token(self) -> str | None:
        return self.get_channel_status().latest_committed_offset_token

    def wait_for_commit(
        self, token_checker: Callable[[str | None], bool], timeout_seconds: int | None = None
    ) -> None:
        if timeout_seconds is not None and timeout_seconds < 0:
            raise ValueError("timeout_seconds cannot be negative")
        start = self.server.clock
        while timeout_seconds is None or self.server.clock - start < timeout_seconds:
            status = self.get_channel_status()
            if token_checker(status.latest_committed_offset_token):
                return
            if status.status_code != "SUCCESS":
                raise FakeStreamingError(
                    "INVALID_CHANNEL_ERROR",
                    f"Channel is invalid in the remote with status: {status.status_code}",
                )
            self.server.tick(1)
        raise TimeoutError("Wait for commit timed out")

    def close(self, drop: bool = False, wait_for_flush: bool = True,
              timeout_seconds: int | None = None) -> None:  # fmt: skip
        if wait_for_flush and not self.closed:
            self.server.flush()
        self.closed = True


class FakeClient:
    """``StreamingIngestClient.from_table(...)``: one table, channels by name."""

    def __init__(self, server: FakeServer, table: str) -> None:
        self.server, self.table = server, table.upper()
        self.opened = 0

    def open_channel(
        self, channel_name: str, offset_token: str | None = None
    ) -> tuple[FakeChannel, Status]:
        if not self.server.has_table(self.table):
            raise FakeStreamingError(
                "SF_API_NOT_FOUND_ERROR", f"Pipe {self.table}-STREAMING does not exist"
            )
        state = self.server.channels.setdefault((self.table, channel_name), _ChannelState())
        # a reopen supersedes the previous instance: what it appended and the server has not
        # committed is never acknowledged
        state.generation += 1
        state.pending = [a for a in state.pending if a.generation == state.generation]
        self.opened += 1
        channel = FakeChannel(self.server, self.table, channel_name, state)
        return channel, channel.get_channel_status()

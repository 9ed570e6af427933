"""DuckDB sink: Arrow appends into ``atomic.events``, one transaction per batch.

The table is created on first use with the contract's atomic columns; each entity schema that
appears later adds a JSON column, in the same transaction as the rows that need it.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa

from loader.batch import Batch
from loader.contract import ATOMIC_FIELDS, ATOMIC_SCHEMA, ENTITY_COLUMN_RE, LOAD_TSTAMP, Kind
from loader.errors import ConfigError, TerminalSinkError, TransientSinkError
from loader.failed import ErrorType, FailedEvent
from loader.sinks.duckdb_lock import ONE_WRITER, lock_holder

SQL_TYPES = {
    Kind.STRING: "VARCHAR",
    Kind.TSTAMP: "TIMESTAMP",
    Kind.INT: "BIGINT",
    Kind.DOUBLE: "DOUBLE",
    Kind.BOOL: "BOOLEAN",
}
# A value the table refuses; anything else (locks, I/O, conflicts) is not the data's fault.
_DATA_ERRORS = (
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
    duckdb.TypeMismatchException,
)

# A checkpoint that completes a row group compresses it whole, every column at once: with
# DuckDB's 122,880 rows that took a streaming loader from 250 MB to 420 MB for a second, every
# 25 s at 5,000 events/s. At 16,384 rows its memory stays within 250-275 MB, and a bulk load
# of 290,000 events takes as long (both measured; see BENCHMARKS.md, collector memory).
ROW_GROUP_ROWS = 16_384
# DuckDB keeps what it learns of a table (row group metadata, cached blocks) while the
# connection is open: a streaming loader's memory rose by about 30 MB per 750,000 events,
# whatever the row group size or memory_limit. Reopening the file every 250,000 committed
# rows gives it back (measured: 250-270 MB over 750,000 events); a reopen costs a checkpoint.
REOPEN_ROWS = 250_000

# A DuckDB file starts with the main header's checksum (8 bytes), then these magic bytes.
MAGIC_OFFSET, MAGIC = 8, b"DUCK"

EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS atomic.events (\n    "
    + ",\n    ".join(f"{f.name} {SQL_TYPES[f.kind]}" for f in ATOMIC_FIELDS)
    + f",\n    {LOAD_TSTAMP} TIMESTAMP\n)"
)
FAILED_DDL = """CREATE TABLE IF NOT EXISTS atomic.failed_events (
    failed_at TIMESTAMP,
    source VARCHAR,
    error_type VARCHAR,
    message VARCHAR,
    raw VARCHAR
)"""


def refuse_non_database(path: str) -> None:
    """Refuse a path that exists but holds no DuckDB database. DuckDB 2.0 opens an existing
    ``.csv``, ``.tsv``, ``.json`` or ``.parquet`` file (even an empty one) as an in-memory
    database of views over it: every write succeeds and is gone at exit. Other files it
    refuses with an I/O error that the sink would report as a lock. A missing path is fine:
    DuckDB creates a new database there."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(MAGIC_OFFSET + len(MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:  # a directory, no permission
        raise ConfigError(
            f"--sink duckdb:{path}: cannot read {path} ({exc.strerror}); give the path of a "
            "DuckDB database, or a new path for a new one"
        ) from exc
    if header[MAGIC_OFFSET:] != MAGIC:
        what = "an empty file" if not header else "not a DuckDB database"
        raise ConfigError(
            f"--sink duckdb:{path}: {path} exists and is {what}, so nothing would be stored "
            "in it; give the path of a DuckDB database, or a path that does not exist yet for "
            "a new one (the loader never overwrites a file)"
        )


class DuckDBSink:
    """Writes batches into a DuckDB file (or an existing connection to one)."""

    def __init__(
        self,
        path: str | Path,
        connection: duckdb.DuckDBPyConnection | None = None,
        row_group_size: int | None = None,
        reopen_rows: int = 0,
    ):
        """A streaming loader process (``streaming()``) writes ``ROW_GROUP_ROWS``-row groups
        and reopens its file every ``REOPEN_ROWS`` rows; by default, as a library in a process
        that may hold the file open elsewhere (dbt in the same process, tests), neither.

        With ``row_group_size`` the file is attached as ``warehouse`` to a connection of its
        own, which fails if this process already has it open, and made the default with
        ``USE``, which ``con.cursor()`` does not carry over. A sink given a ``connection``
        never reopens it."""
        self.path = str(path)
        self.row_group_size = row_group_size
        self.reopen_rows = reopen_rows if connection is None else 0
        self._rows_since_open = 0
        if connection is None:
            refuse_non_database(self.path)
        self.con = connection if connection is not None else self._connect()
        self.con.execute("CREATE SCHEMA IF NOT EXISTS atomic")
        self.con.execute(EVENTS_DDL)
        self.con.execute(FAILED_DDL)
        self._columns = self._existing_columns()

    @classmethod
    def streaming(cls, path: str | Path) -> DuckDBSink:
        """The sink of a long-running loader process (the collector, tail, Kafka)."""
        return cls(path, row_group_size=ROW_GROUP_ROWS, reopen_rows=REOPEN_ROWS)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            if self.row_group_size is None:
                return duckdb.connect(self.path)
            con = duckdb.connect()
            con.execute(
                f"ATTACH ? AS warehouse (ROW_GROUP_SIZE {int(self.row_group_size)})", [self.path]
            )
            con.execute("USE warehouse")
            return con
        except duckdb.Error as exc:
            if damaged(exc):
                raise TerminalSinkError(
                    f"cannot open {self.path}: the file is damaged ({exc}). Move it aside and "
                    "restore a copy (or rebuild: the loader recreates an empty warehouse); "
                    "events not yet loaded wait in the spool meanwhile"
                ) from exc
            if not isinstance(exc, duckdb.IOException):
                raise
            if holder := lock_holder(exc):
                raise TransientSinkError(
                    f"cannot open {self.path}: {holder} has it open, and {ONE_WRITER}"
                ) from exc
            raise TransientSinkError(
                f"cannot open {self.path}: {exc}. Another process (dbt, a duckdb shell) may "
                f"hold the file; {ONE_WRITER}."
            ) from exc

    def _reopen_if_due(self) -> None:
        """Before a batch, not after one: a file another process took meanwhile is then a
        transient error of a batch not yet written, retried like any other."""
        if not self.reopen_rows or self._rows_since_open < self.reopen_rows:
            return
        self.con.close()  # checkpoints: the WAL is empty afterwards (closing twice is harmless)
        self.con = self._connect()
        self._rows_since_open = 0

    def bulk_load(self, checkpoint_threshold: str = "256MB") -> None:
        """For a finite source (a file): checkpoint every ``checkpoint_threshold`` of WAL rather
        than DuckDB's 16 MB, which a 10,000-event batch exceeds, so that every commit would
        also rewrite the table's open row group. Costs memory (un-checkpointed rows stay in
        DuckDB's buffers), which a long-running collector should not spend; the database
        checkpoints on close.

        DuckDB also runs on the committing thread alone: the source parses the next block on a
        second thread, and an insert of one batch from one Arrow table is a single task, so
        DuckDB's worker threads would only compete with the parser for the cores."""
        self.reopen_rows = 0  # a bulk load ends soon, and a reopen would checkpoint early
        self.con.execute(f"SET checkpoint_threshold = '{checkpoint_threshold}'")
        self.con.execute("SET threads = 1")

    def _existing_columns(self) -> set[str]:
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'atomic' AND table_name = 'events'"
        ).fetchall()
        return {r[0] for r in rows}

    def entity_columns(self) -> set[str]:
        return {c for c in self._columns if ENTITY_COLUMN_RE.fullmatch(c)}

    def write(self, batch: Batch) -> None:
        try:
            self._reopen_if_due()
        except duckdb.Error as exc:  # the close's checkpoint: disk full, I/O; retried
            raise TransientSinkError(f"{self.path}: reopening: {exc}") from exc
        table = batch.to_arrow() if batch.good else None
        try:
            self._commit(table, batch.failed)
        except _DATA_ERRORS:
            if table is None:
                raise
            # One bad value must not cost the batch: find it by halves, keep the rest.
            self._commit_by_halves(table, batch.failed)
        except duckdb.Error as exc:  # a lock, I/O, a conflict: the same batch may work later
            raise TransientSinkError(f"{self.path}: {exc}") from exc
        self._rows_since_open += len(batch)

    def _commit(self, table: pa.Table | None, failed: list[FailedEvent]) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            added = []
            if table is not None:
                added = self._add_entity_columns(table.column_names[len(ATOMIC_SCHEMA) :])
                con.register("_persona_batch", table)
                con.execute("INSERT INTO atomic.events BY NAME SELECT * FROM _persona_batch")
                con.unregister("_persona_batch")
            if failed:
                con.executemany(
                    "INSERT INTO atomic.failed_events VALUES (?, ?, ?, ?, ?)",
                    [(f.failed_at, f.source, f.error_type, f.message, f.raw) for f in failed],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._columns.update(added)

    def _commit_by_halves(self, table: pa.Table, failed: list[FailedEvent]) -> None:
        if table.num_rows == 1:
            try:
                self._commit(table, failed)
            except _DATA_ERRORS as exc:
                row = {k: v for k, v in table.to_pylist()[0].items() if v is not None}
                raw = json.dumps(row, default=str)
                self._commit(
                    None, [*failed, FailedEvent(raw, ErrorType.WAREHOUSE_REJECTED, str(exc), "")]
                )
            return
        middle = table.num_rows // 2
        try:
            self._commit(table.slice(0, middle), failed)
        except _DATA_ERRORS:
            self._commit_by_halves(table.slice(0, middle), failed)
        try:
            self._commit(table.slice(middle), [])
        except _DATA_ERRORS:
            self._commit_by_halves(table.slice(middle), [])

    def _add_entity_columns(self, names: list[str]) -> list[str]:
        new = [n for n in names if n not in self._columns]
        for name in new:
            if not ENTITY_COLUMN_RE.fullmatch(name):
                raise TerminalSinkError(f"refusing to create column {name!r}: not an entity name")
            self.con.execute(f'ALTER TABLE atomic.events ADD COLUMN IF NOT EXISTS "{name}" JSON')
        return new

    def close(self) -> None:
        self.con.close()


def damaged(exc: BaseException) -> bool:
    """DuckDB's words for a file that is not (or no longer) a database: retrying will not
    help, and "another process holds it" would send its owner looking for the wrong thing."""
    text = str(exc)
    return "not a valid DuckDB database file" in text or "Corrupt database file" in text

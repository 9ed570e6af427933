"""Where the dashboard reads from, read-only, and how.

DuckDB: the file named by ``PERSONA_DUCKDB`` (default ``warehouse.duckdb``), opened with
``read_only=True`` for the length of one page's run and closed at its end (``close_run``), so a
``make demo`` or a ``persona serve`` started meanwhile is kept waiting for no longer than a page
takes to draw; cached results need no connection at all. While another
process holds the file for writing (``persona serve``), DuckDB refuses even a reader; the
dashboard then reads the live mode's published snapshot beside it (serving/snapshot.py), which
is always a complete database.

Snowflake (``PERSONA_TARGET=snowflake``): the README's ``SNOWFLAKE_*`` variables, key-pair
auth, and the role ``PERSONA_DASHBOARD_ROLE`` (default ``PERSONA_ANALYST``) rather than the
transformer role dbt uses, so columns masked for analysts stay masked here.

Every query takes bind parameters (``?``); nothing typed into the app is pasted into SQL.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serving.snapshot import snapshot_path

__all__ = ["snapshot_path"]

DEFAULT_ROLE = "PERSONA_ANALYST"


class Unavailable(Exception):
    """The warehouse cannot be read; the message says what to do (shown as is, no trace)."""


@dataclass(frozen=True)
class Source:
    kind: str  # "duckdb", "snapshot" or "snowflake"
    location: str  # the file read, or the Snowflake account
    note: str  # one line for the sidebar
    role: str | None = None

    def version(self) -> tuple[Any, ...]:
        """Changes whenever the data may have: cached results are keyed by it."""
        if self.kind == "snowflake":
            return (self.kind, self.location, int(time.time() // 60))
        stats: list[tuple[int, int, int] | None] = []
        for path in (Path(self.location), Path(f"{self.location}.wal")):
            try:
                st = path.stat()
                stats.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                stats.append(None)
        return (self.kind, self.location, *stats)


def warehouse_path(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("PERSONA_DUCKDB") or "warehouse.duckdb")


def _is_lock_error(exc: BaseException) -> bool:
    return "lock" in str(exc).lower()


# Streamlit runs a page's script in one thread: its queries share one connection.
_run = threading.local()


def _held(key: tuple[str, str], connect: Any) -> Any:
    """The run's connection for ``key``, made by ``connect()`` on first use."""
    held = getattr(_run, "held", None)
    if held is not None and held[0] == key:
        return held[1]
    close_run()
    con = connect()
    _run.held = (key, con)
    return con


def _open_duckdb(path: Path) -> Any:
    """The run's read-only connection to ``path``."""
    import duckdb

    return _held(("duckdb", str(path)), lambda: duckdb.connect(str(path), read_only=True))


def close_run() -> None:
    """Close the run's connection, if any (the end of every page run)."""
    held = getattr(_run, "held", None)
    _run.held = None
    if held is not None:
        held[1].close()


def resolve(env: Mapping[str, str] = os.environ) -> Source:
    """The source to read, or Unavailable saying why not and what to run."""
    if env.get("PERSONA_TARGET", "").lower() == "snowflake":
        account = env.get("SNOWFLAKE_ACCOUNT", "")
        missing = [k for k in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER") if not env.get(k)]
        if missing:
            raise Unavailable(
                f"PERSONA_TARGET=snowflake but {', '.join(missing)} is not set "
                '(docs/dashboard.md, "On Snowflake")'
            )
        role = env.get("PERSONA_DASHBOARD_ROLE") or DEFAULT_ROLE
        return Source("snowflake", account, f"Snowflake {account} as {role}", role)
    path = warehouse_path(env)
    snapshot = snapshot_path(path)
    if not path.is_file():
        if snapshot.is_file():
            return _snapshot(snapshot, f"{path} is missing")
        raise Unavailable(f"no warehouse at {path}: run `make demo` (or set PERSONA_DUCKDB)")
    try:
        _open_duckdb(path)  # kept for the run's queries
    except Exception as exc:
        if not _is_lock_error(exc):
            raise Unavailable(f"cannot open {path} read-only: {str(exc).splitlines()[0]}") from exc
        if snapshot.is_file():
            return _snapshot(snapshot, f"{path} is held by the live process")
        raise Unavailable(
            f"{path} is held by another process and there is no snapshot at {snapshot} yet: "
            "`persona serve` publishes one after its first refresh (or stop the process that "
            "holds the file)"
        ) from exc
    return Source("duckdb", str(path), f"{path} (read-only)")


def _snapshot(snapshot: Path, why: str) -> Source:
    age = time.time() - snapshot.stat().st_mtime
    return Source(
        "snapshot",
        str(snapshot),
        f"{snapshot}, the live snapshot ({why}), published {age:,.0f} s ago",
    )


def _connect_snowflake(source: Source, env: Mapping[str, str] = os.environ) -> Any:
    import snowflake.connector

    options: dict[str, Any] = {
        "paramstyle": "qmark",  # the same `?` placeholders as on DuckDB
        "account": env.get("SNOWFLAKE_ACCOUNT"),
        "user": env.get("SNOWFLAKE_USER"),
        "role": source.role,
        "warehouse": env.get("SNOWFLAKE_WAREHOUSE", "PERSONA_WH"),
        "database": env.get("SNOWFLAKE_DATABASE", "PERSONA"),
        "schema": env.get("SNOWFLAKE_SCHEMA", "DERIVED"),
        "session_parameters": {"QUERY_TAG": "persona-dashboard"},
    }
    if key := env.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        options["private_key_file"] = key
        if pwd := env.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
            options["private_key_file_pwd"] = pwd
    return snowflake.connector.connect(**options)


def run_query(source: Source, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run one read-only query; columns come back lower-case on both engines."""
    if source.kind == "snowflake":
        con = _held(("snowflake", source.location), lambda: _connect_snowflake(source))
        cur = con.cursor()
        try:
            cur.execute(sql, list(params))
            columns = [d[0].lower() for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)
        finally:
            cur.close()
    path = Path(source.location)
    try:
        con = _open_duckdb(path)
    except Exception as exc:
        if source.kind == "duckdb" and _is_lock_error(exc):
            raise Unavailable(
                f"{path} was just taken by another process: reload the page "
                "(the dashboard reads the live snapshot while one runs)"
            ) from exc
        raise
    cursor = con.cursor()
    try:
        frame = cursor.execute(sql, list(params)).df()
    finally:
        cursor.close()
    frame.columns = [str(c).lower() for c in frame.columns]
    return frame


def duckdb_cursor(source: Source) -> Any:
    """A cursor on the run's read-only DuckDB connection, for code that takes one
    (``privacy.forget.preview``); closed with the run's connection."""
    if source.kind == "snowflake":
        raise Unavailable("not on Snowflake: this reads the DuckDB warehouse")
    return _open_duckdb(Path(source.location)).cursor()


def column_exists(source: Source, schema: str, table: str, column: str) -> bool:
    """Whether a table has a column (for tables other parts of Persona may not have built)."""
    found = run_query(
        source,
        "select count(*) as n from information_schema.columns where lower(table_schema) = ? "
        "and lower(table_name) = ? and lower(column_name) = ?",
        [schema.lower(), table.lower(), column.lower()],
    )
    return bool(found["n"].iloc[0])

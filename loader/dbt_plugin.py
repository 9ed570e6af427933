"""A dbt-duckdb plugin (``plugins: [{module: loader.dbt_plugin}]`` in profiles.example.yml):
when another process holds the warehouse file, ``dbt build`` fails with one line naming that
process and what to do, instead of dbt-duckdb's three tracebacks of the raw lock error.

dbt-duckdb lets a ``duckdb.IOException`` from ``duckdb.connect`` escape its error handling
(it wraps only ``RuntimeError``), so dbt prints it with a stack trace. A plugin's
``update_connection_config`` runs just before that connect: this one opens the file first and,
if DuckDB reports a lock conflict, raises a ``RuntimeError``, which dbt-duckdb reports as a
connection failure ("Database Error" and the message, no stack trace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.plugins import BasePlugin

from loader.sinks.duckdb_lock import ONE_WRITER, lock_holder


class Plugin(BasePlugin):
    def update_connection_config(self, creds: DuckDBCredentials, config: dict[str, Any]) -> None:
        """Open the file as dbt-duckdb is about to, and close it again. Skipped when the file
        does not exist yet (no one can hold it; ``:memory:``, MotherDuck) and when the profile
        configures ``retries`` (waiting for the lock is then what the user asked for). Within
        one process DuckDB shares the open database, so a refresh run in the process that
        holds the file (the live mode, tests) is not refused."""
        if creds.retries or not Path(creds.path).is_file():
            return
        try:
            duckdb.connect(creds.path, read_only=False, config=dict(config)).close()
        except duckdb.IOException as exc:
            holder = lock_holder(exc)
            if holder is None:
                return  # another I/O problem: dbt-duckdb's own connect reports it
            raise RuntimeError(
                f"cannot open {creds.path}: {holder} has it open, and {ONE_WRITER}. "
                "Stop that process (or wait for it to finish), then run dbt again."
            ) from None

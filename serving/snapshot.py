"""SQL while live: a read-only copy of the warehouse that other processes may open.

DuckDB lets one process hold a file that is written (ARCHITECTURE.md, decision 6), and the live
process holds ``PERSONA_DUCKDB``. So after a refresh it publishes a snapshot next to it
(``warehouse.duckdb`` → ``warehouse.snapshot.duckdb``) that anyone may open read-only: the
``duckdb`` CLI, a notebook, a dashboard, ``dbt docs``.

The guarantee: the file at the snapshot's path is always a complete, consistent DuckDB
database (one transaction's view of every schema, table, view and macro), never a half-written
one. It is written under a temporary name in the same directory, by DuckDB's ``COPY FROM
DATABASE`` from a connection of the live process (MVCC: the loader keeps appending meanwhile),
checkpointed, fsynced, and renamed over the previous one. A reader that has the previous
snapshot open keeps reading it (its inode) until it reconnects; it never blocks a publication,
and a publication never changes what an open reader sees.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger("persona.serving.snapshot")

ALIAS = "persona_snapshot"


def snapshot_path(warehouse: str | os.PathLike[str]) -> Path:
    """Where the snapshot of ``warehouse`` goes: ``x.duckdb`` → ``x.snapshot.duckdb``."""
    path = Path(warehouse)
    stem = path.name.removesuffix(".duckdb")
    return path.with_name(f"{stem}.snapshot.duckdb")


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


# Of the live process's time, the share the snapshot's copies may take at most. A copy rewrites
# the whole warehouse on the cores the refresh needs: on the serving bench's warehouse 4-6 s
# every 30 s, a sixth of the time, during which the refreshes ran slower, and a profile's
# freshness p95 was made of them (``python -m bench refresh``, with and without the
# snapshot). At 5 %, about one refresh in twenty overlaps a copy; and a warehouse whose
# copy takes longer than the interval is not copied back to back.
MAX_SHARE = 0.05


class Snapshot:
    """Publishes read-only copies of the live warehouse at ``path``, at most one every
    ``min_seconds`` and, between the end of one and the start of the next, at least as long
    as the copy took over ``max_share`` (a copy rewrites everything: it costs about as much as
    reading the whole warehouse once)."""

    def __init__(self, path: Path, min_seconds: float = 30.0,
                 max_share: float = MAX_SHARE) -> None:  # fmt: skip
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share {max_share!r}: a share of the time, in (0, 1]")
        self.path = path
        self.min_seconds = min_seconds
        self.max_share = max_share
        self.seconds = 0.0  # the last copy's
        self.published_at: float | None = None
        self.publications = 0
        self.failures = 0
        self.last_error: str | None = None
        self.bytes = 0
        # the publisher's thread and a forget request (which republishes at once) take turns
        self._lock = threading.Lock()

    def interval(self) -> float:
        """Seconds from the end of a publication to the start of the next."""
        return max(self.min_seconds, self.seconds * (1 / self.max_share - 1))

    def due(self) -> bool:
        return self.published_at is None or time.time() - self.published_at >= self.interval()

    def publish(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Copy the database ``con`` is connected to, then rename the copy over the snapshot.
        False (logged, counted) if it failed: the previous snapshot stays as it was."""
        with self._lock:
            return self._publish(con)

    def _publish(self, con: duckdb.DuckDBPyConnection) -> bool:
        started = time.perf_counter()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a killed publisher's copy (any pid: one live process holds the warehouse)
            for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp*"):
                leftover.unlink(missing_ok=True)
            cursor = con.cursor()
            try:
                catalog = cursor.execute("select current_database()").fetchall()[0][0]
                cursor.execute(f"attach {_quote(tmp)} as {ALIAS}")
                try:
                    cursor.execute(f'copy from database "{catalog}" to {ALIAS}')
                finally:
                    cursor.execute(f"detach {ALIAS}")  # checkpoints: the file alone holds it
            finally:
                cursor.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)  # atomic: a reader sees the old file or the new one
        except Exception as exc:
            self.failures += 1
            self.last_error = str(exc)[:2000]
            log.error("publishing the snapshot %s failed: %s", self.path, self.last_error)
            for leftover in (tmp, Path(f"{tmp}.wal")):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            return False
        self.published_at = time.time()
        self.seconds = time.perf_counter() - started
        self.publications += 1
        self.last_error = None
        self.bytes = self.path.stat().st_size
        log.info("snapshot published to %s in %.2f s (%d bytes); the next in %.0f s at the "
                 "earliest", self.path, self.seconds, self.bytes, self.interval())  # fmt: skip
        return True

    def status(self) -> dict[str, Any]:
        age = None if self.published_at is None else round(time.time() - self.published_at, 3)
        return {"snapshot_path": str(self.path), "snapshot_age_s": age,
                "snapshots": self.publications, "snapshot_failures": self.failures,
                "snapshot_bytes": self.bytes, "snapshot_error": self.last_error,
                "snapshot_seconds": round(self.seconds, 3),
                "snapshot_interval_s": round(self.interval(), 1)}  # fmt: skip

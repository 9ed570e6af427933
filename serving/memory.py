"""Where the live process's memory goes, and giving freed memory back.

The process holds three things that grow: DuckDB's buffer pool (bounded by ``--memory-limit``),
the stream attributes' state and the online store (bounded by the keys of their windows:
``StreamEngine.evict``), and what the allocator keeps after a refresh freed it. ``/health``
reports the first two beside the process's RSS, so a growing RSS can be told apart from a
growing state (``python -m bench serving --soak-seconds 600`` reads them).

glibc's malloc keeps the pages of freed blocks in per-thread arenas and returns them to the
system only from the top of the heap: a process whose threads (the loader, the API's pool,
dbt's runs) free and allocate at different moments keeps growing though what it holds does
not. ``trim`` asks glibc to return what is free (``malloc_trim(0)``, a few milliseconds), once
a refresh has freed its intermediate results.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Any

log = logging.getLogger("persona.serving.memory")

_libc: Any = None


def rss_mb(pid: int | str = "self") -> float:
    """The resident set of a process (this one by default), in MB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def duckdb_mb(con: Any) -> dict[str, float]:
    """What DuckDB's allocator holds in this database instance, in MB: ``total``, and each of
    its parts (``duckdb_memory()``'s tags: cached table blocks, hash tables, ...) over 1 MB."""
    rows = con.execute(
        "select lower(tag), memory_usage_bytes from duckdb_memory() where memory_usage_bytes > 0"
    ).fetchall()
    parts = {tag: round(size / 2**20, 1) for tag, size in rows if size >= 2**20}
    return {"total": round(sum(size for _, size in rows) / 2**20, 1), **parts}


def trim() -> bool:
    """Returns the allocator's free pages to the system (glibc only; elsewhere a no-op)."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name and os.name == "posix" else False
            if _libc and not hasattr(_libc, "malloc_trim"):
                _libc = False
        except OSError:
            _libc = False
    if not _libc:
        return False
    return bool(_libc.malloc_trim(0))

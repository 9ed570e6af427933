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

Python's own collector stops every thread while it walks the objects it tracks; a full
collection (generation 2) walks all of them. In the live process most of them live long and
hold no cycles (the stream attributes' state: ~900,000 lists and dicts for 82,000 keys), so a
full collection took 0.4-1 s, every few seconds while events flowed. ``GcPauses`` times each
collection (``/health``); ``settle`` moves what survived into the permanent generation after
each refresh (``gc.freeze``: collections skip it; reference counting still frees it), and
every ``FULL_EVERY_SECONDS`` puts it back and collects everything once, so a cycle that was
frozen while pending is reclaimed within that time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections import deque
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


class GcPauses:
    """Collections and the time they stopped the process, per generation (``gc.callbacks``),
    and the last ``LONG_KEPT`` pauses of ``long_ms`` or more (epoch second, generation, ms)."""

    LONG_KEPT = 50

    def __init__(self, long_ms: float = 5.0) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self.long_ms = long_ms
        self.long: deque[tuple[float, int, float]] = deque(maxlen=self.LONG_KEPT)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        gen = min(info.get("generation", 0), 2)
        took = time.perf_counter() - self._started
        self.count[gen] += 1
        self.total[gen] += took
        self.longest[gen] = max(self.longest[gen], took)
        if took * 1000 >= self.long_ms:
            self.long.append((round(time.time(), 3), gen, round(took * 1000, 2)))

    def install(self) -> GcPauses:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def status(self) -> dict[str, Any]:
        gens = {f"gen{g}": {"count": self.count[g], "total_ms": round(1000 * self.total[g], 1),
                            "max_ms": round(1000 * self.longest[g], 2)}
                for g in range(3)}  # fmt: skip
        return {**gens, "long": list(self.long)}


FULL_EVERY_SECONDS = 600.0
_full_at = 0.0
# the last full collection: when (epoch s), what it reclaimed, how long it took, and how many
# objects were frozen after it (counting them walks them all: done then, not per /health)
last_full: dict[str, float] = {}


def settle(full_every: float | None = None) -> bool:
    """After a refresh: freeze what survived; every ``full_every`` seconds (default
    ``FULL_EVERY_SECONDS``) first unfreeze and collect everything. True when it collected."""
    global _full_at
    every = FULL_EVERY_SECONDS if full_every is None else full_every
    now = time.monotonic()
    full = now - _full_at >= every
    if full:
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        _full_at = now
        took = time.perf_counter() - started
    gc.freeze()
    if full:
        last_full.update(at=round(time.time(), 3), collected=collected,
                         ms=round(1000 * took, 1), frozen=gc.get_freeze_count())  # fmt: skip
    return full

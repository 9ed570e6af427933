"""serving/memory.py: the live process's account of its memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from serving.memory import duckdb_mb, rss_mb, trim


def test_rss_is_this_process_and_zero_for_one_gone() -> None:
    before = rss_mb()
    ballast = bytearray(64 * 2**20)  # touched: resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    assert rss_mb() - before > 50
    assert rss_mb(os.getpid()) > 50
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert rss_mb(int(done.stdout)) == 0.0


def test_duckdb_share_grows_with_what_the_database_holds() -> None:
    con = duckdb.connect()
    empty = duckdb_mb(con)
    con.execute("create table t as select range as i, repeat('x', 100) as s from range(1000000)")
    held = duckdb_mb(con)
    assert held["total"] - empty["total"] > 20
    assert sum(v for k, v in held.items() if k != "total") <= held["total"]


def test_trim_returns_freed_memory_on_glibc() -> None:
    chunks = [bytearray(2**20) for _ in range(200)]
    del chunks
    trimmed = trim()
    # glibc (this image, CI) has malloc_trim; elsewhere it is a no-op that says so
    assert trimmed is True or not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6")


SETTLE = """
import gc, json, weakref
from serving.memory import settle

class Node:
    pass

state = {("g", str(i)): {"t": i, "a": {"views": [[i, "p"]]}} for i in range(100_000)}
walked_before = len(gc.get_objects(generation=2))
settle(0)
walked_after = len(gc.get_objects(generation=2))
cycle = Node()
cycle.me = cycle
ref = weakref.ref(cycle)
del cycle
settle(3600)  # frozen while pending: a collection does not see it
gc.collect()
kept_frozen = ref() is not None
settle(0)  # the full one: unfrozen and collected
print(json.dumps({"before": walked_before, "after": walked_after,
                  "frozen": gc.get_freeze_count(), "kept_frozen": kept_frozen,
                  "reclaimed": ref() is None, "state": len(state)}))
"""


def test_settle_takes_long_lived_state_out_of_the_collectors_walk_and_reclaims_cycles() -> None:
    """The stream state's shape (dicts of lists, no cycles): after ``settle`` a full collection
    no longer walks it; a cycle frozen while pending survives until the next full settle."""
    done = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[2])  # fmt: skip
    got = json.loads(done.stdout)
    assert got["before"] > 300_000  # 100,000 keys: a dict, a dict and two lists each
    assert got["after"] < 1_000
    assert got["frozen"] > 300_000 and got["state"] == 100_000
    assert got["kept_frozen"] and got["reclaimed"]

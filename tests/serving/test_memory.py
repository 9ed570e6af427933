"""serving/memory.py: the live process's account of its memory."""

from __future__ import annotations

import os
import subprocess
import sys

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

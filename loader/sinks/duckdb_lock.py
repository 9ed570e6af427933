"""Who holds a DuckDB file: DuckDB allows one writing process per file, and the second one gets
"Could not set lock on file ... Conflicting lock is held in <program> (PID n)". The loader and
dbt (through ``loader.dbt_plugin``) both turn that into one line naming the holder.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ONE_WRITER = "DuckDB allows one writing process per file"
_CONFLICT = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(exc: BaseException) -> str | None:
    """``PID 123 (python3.11 -m loader --source ...)`` if ``exc`` is DuckDB's lock conflict,
    else None. The command line comes from /proc where there is one (it says which tool the
    process is, where the program path says only "python"), else DuckDB's program path."""
    match = _CONFLICT.search(str(exc))
    if match is None:
        return None
    pid = int(match["pid"])
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        argv = []
    argv = [arg for arg in argv if arg]
    command = " ".join([Path(argv[0]).name, *argv[1:]]) if argv else match["program"]
    return f"PID {pid} ({textwrap.shorten(command, width=160, placeholder=' ...')})"

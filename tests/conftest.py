from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Snowplow's own test data (Apache-2.0, see tests/reference/README.md), used as an oracle.
REFERENCE = ROOT / "tests" / "reference"


def pytest_unconfigure(config: pytest.Config) -> None:
    """snowplow_tracker calls ``logging.basicConfig()`` at import, binding a root handler to the
    stderr of that moment, which is pytest's capture, closed before interpreter exit; Snowpark
    logs at exit (closing its sessions) and each line would print "Logging error". Drop the
    handlers whose stream is gone."""
    root = logging.getLogger()
    root.handlers[:] = [
        h for h in root.handlers if not getattr(getattr(h, "stream", None), "closed", False)
    ]


@pytest.fixture(autouse=True)
def _root_logger() -> Iterator[None]:
    """A command run in-process (``main(argv)``) configures the root logger: undo it after
    each test, as its process exit would."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(scope="session")
def reference() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def fixture_line() -> str:
    return (REFERENCE / "enriched-tsv" / "fixture.tsv").read_text().rstrip("\n")


# A second process that opens a DuckDB file and keeps it (argv: a marker that shows up in its
# command line, so messages naming the holder can be checked, then the file).
HOLD_DUCKDB = (
    "import sys,time,duckdb;c=duckdb.connect(sys.argv[2]);print(1,flush=True);time.sleep(300)"
)


@pytest.fixture
def duckdb_holder() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start a process that holds a DuckDB file open (as a running loader does) until the test
    ends; the process is killed even if the test fails."""
    started: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_DUCKDB, "hold-the-warehouse", str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "1"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loader.live_collector import Collector


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A collector process on a free port of 127.0.0.1, killed after the test if still up."""
    c = Collector(tmp_path)
    c.start()
    yield c
    if c.proc and c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()

"""`logs.configure` owns the console, not the root logger: lines go to the stderr of the moment
(a closed capture must not break logging at exit), and a host's other handlers keep working."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from loader import logs


@pytest.fixture
def root() -> logging.Logger:
    return logging.getLogger()  # restored after each test by conftest's _root_logger


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_lines_go_to_the_stderr_of_the_moment(root, monkeypatch) -> None:
    first, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.configure("json")
    first.close()  # as a test's capture is, before interpreter exit
    monkeypatch.setattr(sys, "stderr", later)
    logging.getLogger("persona.test").warning("token=abc after the swap")
    line = later.getvalue()
    assert "token=*** after the swap" in line and '"level": "warning"' in line


def test_only_the_console_handler_is_replaced(root, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    kept = Kept()
    root.handlers[:] = [kept, logging.StreamHandler(sys.stderr)]
    logs.configure()
    logs.configure()  # again: still one console handler
    consoles = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    assert kept in root.handlers and len(consoles) == 1
    logging.getLogger("persona.test").info("both see it")
    assert kept.messages == ["both see it"] and "both see it" in sys.stderr.getvalue()

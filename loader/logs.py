"""Log lines for people (text) or for log shippers (one JSON object per line)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

# A secret in a URI or a client setting: sasl.password=..., ssl.key.password=...,
# token=..., and the password of user:password@host.
_SECRET = re.compile(
    r"((?:password|passwd|secret|token|passphrase|api[_.-]?key|credentials?)[\w.-]*=)"
    r"[^&\s'\"]+",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(//[^/\s:@]+:)[^/\s@]+@")


def redact(text: object) -> str:
    """``text`` with every secret it quotes replaced by ``***`` (every log line, every error)."""
    return _USERINFO.sub(r"\1***@", _SECRET.sub(r"\1***", str(text)))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


_FORMAT = ["text"]


def current_format() -> str:
    """The format ``configure`` set, for a child process to log the same way."""
    return _FORMAT[0]


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, never to the stream it was
    at ``configure`` (a test's capture, or a redirect, may have closed that one since)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass  # StreamHandler sets it; this handler always looks it up


def _console(handler: logging.Handler) -> bool:
    """Whether ``configure`` replaces ``handler``: this module's, or a plain StreamHandler (to
    any stream: what ``logging.basicConfig()`` adds, as some libraries do at import).
    Subclasses (files, a test's log capture) stay, and get lines unredacted: redaction is
    this module's formatters'."""
    return isinstance(handler, StderrHandler) or type(handler) is logging.StreamHandler


def configure(fmt: str = "text", level: str = "info") -> None:
    """The root logger prints ``fmt`` lines to stderr. Only a console handler is replaced: a
    host's other handlers (files, a test's log capture) keep working."""
    _FORMAT[0] = fmt
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not _console(h)] + [handler]
    root.setLevel(level.upper())

"""Log lines for people (text) or for log shippers (one JSON object per line)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

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


def configure(fmt: str = "text", level: str = "info") -> None:
    _FORMAT[0] = fmt
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

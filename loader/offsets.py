"""Offset tokens: a source position as the string a sink remembers (Snowflake's channels).

``kind:n1:n2...`` with zero-padded numbers, so that string order is position order, and a kind
so that a channel never resumes one source from another's position.
"""

from __future__ import annotations

from loader.errors import ConfigError


def token(kind: str, *numbers: int) -> str:
    return ":".join([kind, *(f"{n:020d}" for n in numbers)])


def parse(value: str, kind: str) -> list[int]:
    """The numbers of a token of ``kind``; a token of another kind is a configuration error."""
    found, *numbers = value.split(":")
    if found != kind or not numbers:
        raise ConfigError(
            f"the sink's last committed position {value!r} came from another kind of source "
            f"(expected {kind}): give this source its own channel (--channel)"
        )
    return [int(n) for n in numbers]

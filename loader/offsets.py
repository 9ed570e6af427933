"""Offset tokens: a source position as the string a sink remembers (Snowflake's channels).

``kind:n1:n2...`` with zero-padded numbers, and a kind so that a channel never resumes one
source from another's position. Compare two with ``reached``, not as strings: a Kafka token
lists the partitions a process holds at the time, and ``kafka:1:5`` sorts after
``kafka:0:3:1:9`` although the second is further along. A ``tail`` token is
``tail:OFFSET:DEVICE:INODE`` (``tail:OFFSET`` before rotation was followed): an offset in one
file, which says nothing about a position in another.
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


def reached(committed: str | None, wanted: str) -> bool:
    """Whether the position ``committed`` is at or past ``wanted``: for Kafka, every partition
    of ``wanted`` at or past its offset there; otherwise the numbers in order (a spool's
    segment then offset, a count of items). For ``tail``, only an offset in the same file: a
    new file after rotation starts again at 0, below any offset in the old one."""
    if committed is None:
        return False
    kind = wanted.split(":", 1)[0]
    if committed.split(":", 1)[0] != kind:
        return False
    have, want = ([int(n) for n in t.split(":")[1:]] for t in (committed, wanted))
    if kind == "kafka":
        held = dict(zip(have[::2], have[1::2], strict=True))
        return all(held.get(p, -1) >= n for p, n in zip(want[::2], want[1::2], strict=True))
    if kind == "tail":
        return have[1:] == want[1:] and have[0] >= want[0]
    return have >= want

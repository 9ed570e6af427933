"""What a source is, and what some sources can also do.

A source is an iterable of items with a name::

    Source          name, finite, protects_privacy, __iter__ -> Item
    ├── Resumable       position() and seek(token): a re-run resumes where the warehouse is
    ├── Acknowledging   commit(): told after each warehouse commit (spool checkpoint, Kafka)
    ├── Chunked         room: yields chunks no larger than the open batch can still take
    ├── Streaming       stop() and failure: never ends by itself; why it stopped, if it did
    └── Closable        close(): resources to give back when the load ends

Each capability is a ``runtime_checkable`` Protocol: the pipeline asks
``isinstance(source, Resumable)``, and mypy checks that a class claiming a capability has all of
it. Every source states ``finite`` and ``protects_privacy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeAlias, runtime_checkable

from loader.columnar import Chunk
from loader.enriched import Event
from loader.errors import PersonaError
from loader.failed import FailedEvent

#: What a source yields: an event, a failed event, a chunk of both parsed together, or
#: ``None`` while a streaming source waits (so the pipeline can commit a batch on time).
Item: TypeAlias = Event | FailedEvent | Chunk | None


@runtime_checkable
class Source(Protocol):
    """Events from somewhere. ``finite``: it ends by itself (a file), so the sink may be set up
    for a bulk load. ``protects_privacy``: it applies the privacy settings itself, before it
    stores anything (the pipeline must not apply them twice)."""

    @property
    def finite(self) -> bool: ...

    @property
    def protects_privacy(self) -> bool: ...

    @property
    def name(self) -> str: ...

    def __iter__(self) -> Iterator[Item]: ...


@runtime_checkable
class Resumable(Protocol):
    """Has a position the sink can keep (an offset token), and resumes after one."""

    def position(self) -> str: ...

    def seek(self, token: str) -> None: ...


@runtime_checkable
class Acknowledging(Protocol):
    """Told once everything yielded so far is committed to the warehouse, never before: what
    makes delivery at-least-once."""

    def commit(self) -> None: ...


@runtime_checkable
class Chunked(Protocol):
    """Yields chunks of at most ``room`` items (0: no limit), which the pipeline sets to what
    the open batch can still take, so that a batch ends exactly at its row limit."""

    room: int


@runtime_checkable
class Streaming(Protocol):
    """Never ends by itself: ``stop()`` (on SIGTERM/SIGINT) ends iteration once what was
    accepted has been yielded. ``failure``: why it stopped on its own, if it did; the loader
    exits with it after loading what was yielded."""

    @property
    def failure(self) -> PersonaError | None: ...

    def stop(self) -> None: ...


@runtime_checkable
class Closable(Protocol):
    def close(self) -> None: ...

"""The one interface a warehouse implements to receive micro-batches."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from loader.batch import Batch


class Sink(Protocol):
    """Commits a batch atomically: after ``write`` returns, every event in it is durable."""

    def write(self, batch: Batch) -> None: ...

    def entity_columns(self) -> set[str]:
        """The entity columns the events table has (for the schema policy's caps)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Resuming(Protocol):
    """A sink that keeps the source position of its last commit (Snowflake's offset tokens): it
    is the authority on where a re-run resumes."""

    def committed_offset_token(self) -> str | None: ...

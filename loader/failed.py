"""Failed events: input the loader could not turn into an event, kept with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loader.contract import utcnow


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """One rejected input. ``raw`` is exactly what arrived, so it can be replayed after a fix."""

    raw: str
    error_type: str
    message: str
    source: str = ""
    failed_at: datetime = field(default_factory=utcnow)

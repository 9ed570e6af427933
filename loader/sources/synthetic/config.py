"""What the stream is made from: size, seed and time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the simulated shop; the defaults give ~200k events over 30 days."""

    users: int = 2000
    days: int = 30
    seed: int = 0
    start: datetime = datetime(2026, 1, 1)  # naive UTC

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, got {self.users}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")

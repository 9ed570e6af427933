"""What the stream is made from: size, seed and time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loader.contract import utcnow


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the simulated shop; the defaults give ~200k events over 30 days.

    ``days`` days from ``start`` (midnight, naive UTC); events that arrive after ``until``
    (default: the end of the last day) are not emitted. ``ending`` places the days so that
    they end at a given moment, by default now: what the CLI and ``synthetic:`` do. ``apps``
    adds the shop's app users; the web stream is the same with or without them."""

    users: int = 2000
    days: int = 30
    seed: int = 0
    start: datetime = datetime(2026, 1, 1)  # naive UTC
    until: datetime | None = None
    apps: bool = True  # the shop's iOS and Android apps beside the web shop (apps.py)

    @classmethod
    def ending(cls, end: datetime | None = None, **size: int) -> SyntheticConfig:
        """A config (``size``: users, days, seed) whose days end at ``end`` (naive UTC; default
        now): the last day is the day of ``end``, cut at ``end``. A midnight ``end`` gives
        whole days, the same stream as ``start = end - days``."""
        end = utcnow() if end is None else end
        midnight = end.replace(hour=0, minute=0, second=0, microsecond=0)
        last = midnight if end == midnight else midnight + timedelta(days=1)
        days = size.get("days", cls.days)
        if unknown := set(size) - {"users", "days", "seed"}:
            raise TypeError(f"SyntheticConfig.ending: unknown size {sorted(unknown)}")
        users, seed = size.get("users", cls.users), size.get("seed", cls.seed)
        return cls(users, days, seed, start=last - timedelta(days=days), until=end)

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, got {self.users}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")

"""The stream as lines and as a source."""

from __future__ import annotations

from collections.abc import Iterator

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent
from loader.sources.synthetic.config import SyntheticConfig
from loader.sources.synthetic.shoppers import Sim
from loader.sources.synthetic.tables import DAY_MS


def generate_lines(cfg: SyntheticConfig) -> Iterator[str]:
    """Enriched TSV lines (no newline) of ``cfg.days`` days of shop traffic, in arrival order.

    Events are simulated a day at a time and held back until nothing earlier can still arrive,
    so memory stays at about one day of events. Events whose collector time falls after the
    window (late arrivals, retries, sessions running past the end) have not arrived yet and are
    not emitted.
    """
    sim = Sim(cfg)
    for day in range(cfg.days):
        sim.simulate_day(day)
        yield from sim.out.flush(sim.start_ms + (day + 1) * DAY_MS)


class SyntheticSource:
    """``synthetic:?users=N&days=D&seed=S``: the generated stream, through the real parser."""

    finite = True  # loaded in bulk, like a file
    protects_privacy = False

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg

    @property
    def name(self) -> str:
        c = self.cfg
        return f"synthetic:?users={c.users}&days={c.days}&seed={c.seed}"

    def __iter__(self) -> Iterator[Event | FailedEvent]:
        for line in generate_lines(self.cfg):
            yield parse_line(line, self.name)

"""The stream as lines and as a source."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import timedelta

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent
from loader.sources.synthetic.apps import Apps
from loader.sources.synthetic.config import SyntheticConfig
from loader.sources.synthetic.shoppers import Sim
from loader.sources.synthetic.tables import DAY_MS, EPOCH


def generate_lines(cfg: SyntheticConfig) -> Iterator[str]:
    """Enriched TSV lines (no newline) of ``cfg.days`` days of shop traffic, in arrival order.

    Events are simulated a day at a time and held back until nothing earlier can still arrive,
    so memory stays at about one day of events. Events whose collector time falls after the
    window (late arrivals, retries, sessions running past the end) have not arrived yet and are
    not emitted. The apps' events (``cfg.apps``) are merged in by arrival time.
    """
    sim = Sim(cfg)
    apps = Apps(cfg, sim) if cfg.apps else None
    until = None if cfg.until is None else (cfg.until - EPOCH) // timedelta(milliseconds=1)
    for day in range(cfg.days):
        sim.simulate_day(day)
        day_end = sim.start_ms + (day + 1) * DAY_MS
        cut = day_end if until is None else min(day_end, until)
        if apps is None:
            yield from sim.out.flush(cut)
            continue
        apps.simulate_day(day)
        web, app = sim.out.arrivals(cut), apps.out.arrivals(cut)
        yield from (line for _c, _s, line in heapq.merge(web, app, key=lambda a: a[0]))


class SyntheticSource:
    """``synthetic:?users=N&days=D&seed=S&end=DATE``: the generated stream, through the real
    parser."""

    finite = True  # loaded in bulk, like a file
    protects_privacy = False

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg

    @property
    def name(self) -> str:
        c = self.cfg
        end = "" if c.until is None else f"&end={c.until:%Y-%m-%dT%H:%M:%S}"
        return f"synthetic:?users={c.users}&days={c.days}&seed={c.seed}{end}"

    def __iter__(self) -> Iterator[Event | FailedEvent]:
        for line in generate_lines(self.cfg):
            yield parse_line(line, self.name)

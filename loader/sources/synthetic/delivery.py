"""Emission: an event's timestamps, ids, late arrivals and duplicates, in arrival order."""

from __future__ import annotations

import bisect
import random
import uuid
from datetime import timedelta

from loader.sources.synthetic.tables import (
    COLLECTOR,
    CREATED,
    DAY_MS,
    DERIVED,
    DUP_EXACT_P,
    DUP_RESENT_P,
    EPOCH,
    ETL,
    EVENT_ID,
    FINGERPRINT,
    HOUR_MS,
    KIND,
    LATE_P,
    MILLIS,
    SENT,
)


class Delivery:
    """Delivers events as a pipeline would: mostly on time, sometimes late or twice, held back
    in a buffer until nothing earlier can still arrive."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng  # the simulator's: one sequence of draws, so the stream stays fixed
        self.buffer: list[tuple[int, int, str]] = []
        self.seq = 0
        self.dates: dict[int, str] = {}
        self.clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]

    def fmt(self, ms: int) -> str:
        """``YYYY-MM-DD HH:MM:SS.mmm``; table lookups because it runs ~5 times per event."""
        day, rem = divmod(ms, DAY_MS)
        date = self.dates.get(day)
        if date is None:
            date = self.dates[day] = (EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        sec, milli = divmod(rem, 1000)
        return f"{date} {self.clock[sec]}.{MILLIS[milli]}"

    def emit(self, row: list[str], kind: tuple[str, ...], created: int, skew: int) -> None:
        """Deliver one event as the pipeline would: mostly on time, sometimes late or twice.

        ``created`` is the true time; the device clock is off by ``skew``.
        """
        rng = self.rng
        for i, v in zip(KIND, kind, strict=True):
            row[i] = v
        row[EVENT_ID] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        row[FINGERPRINT] = f"{rng.getrandbits(128):032x}"
        rand = rng.random
        sent = created + 5 + int(rand() * 300)
        r = rand()
        if r < LATE_P:  # queued on the device (offline, closed tab) and flushed on a later visit
            u = rng.random()
            hours = (
                rng.uniform(1, 24)
                if u < 0.8
                else rng.uniform(24, 72)
                if u < 0.95
                else (rng.uniform(72, 120))
            )
            sent += int(hours * HOUR_MS)
        collector = sent + 20 + int(rand() * 230)
        row[CREATED] = self.fmt(created + skew)
        line = self.push(row, collector, sent + skew, created + skew)
        r -= LATE_P
        if 0 <= r < DUP_EXACT_P:
            self.append(collector, line)
        elif 0 <= r - DUP_EXACT_P < DUP_RESENT_P:  # tracker retry after a lost response
            delay = int(rng.expovariate(1 / 60_000)) + 1000
            self.push(row, collector + delay, sent + skew + delay, created + skew)

    def push(self, row: list[str], collector: int, sent_dev: int, created_dev: int) -> str:
        row[COLLECTOR] = self.fmt(collector)
        row[SENT] = self.fmt(sent_dev)
        row[DERIVED] = self.fmt(collector - (sent_dev - created_dev))
        row[ETL] = self.fmt(collector + 300 + int(self.rng.random() * 2200))
        line = "\t".join(row)
        self.append(collector, line)
        return line

    def append(self, collector: int, line: str) -> None:
        self.seq += 1
        self.buffer.append((collector, self.seq, line))

    def flush(self, until: int) -> list[str]:
        """Lines that arrived before ``until``, in arrival order; later ones stay buffered."""
        return [line for _c, _s, line in self.arrivals(until)]

    def arrivals(self, until: int) -> list[tuple[int, int, str]]:
        """``flush`` with each line's collector time (ms) and sequence number, for merging the
        arrivals of two deliveries in order."""
        self.buffer.sort()
        cut = bisect.bisect_left(self.buffer, (until,))
        ready = self.buffer[:cut]
        del self.buffer[:cut]
        return ready

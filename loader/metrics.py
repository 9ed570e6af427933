"""Process metrics in Prometheus' text format, served by the collector at ``/metrics``.

Plain counters and gauges updated in place; the loader runs one pipeline per process, so one
module-level registry is enough and nothing here needs a client library.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

FSYNC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Metrics:
    events_good: int = 0
    events_failed: int = 0
    batches: int = 0
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0
    # collector_tstamp -> warehouse commit, of the newest event in the last batch
    last_end_to_end_seconds: float = 0.0
    requests: int = 0
    requests_refused: int = 0
    spool_pending_bytes: int = 0
    # how long each group commit's fsync took: a slow disk shows here before it shows as
    # slow acknowledgements (counts per bucket, not cumulative; rendered cumulatively)
    spool_fsync_buckets: list[int] = field(default_factory=lambda: [0] * (len(FSYNC_BUCKETS) + 1))
    spool_fsync_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def set(self, **values: float) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)

    def observe_fsync(self, seconds: float) -> None:
        with self._lock:
            self.spool_fsync_buckets[bisect.bisect_left(FSYNC_BUCKETS, seconds)] += 1
            self.spool_fsync_seconds += seconds

    def pipeline_values(self) -> dict[str, float]:
        """The loader's own counters, for a collector process that serves ``/metrics``."""
        with self._lock:
            return {name: getattr(self, name) for name in PIPELINE_FIELDS}

    def render(self) -> str:
        rows = [
            ("persona_events_total", "counter", 'status="good"', self.events_good),
            ("persona_events_total", "counter", 'status="failed"', self.events_failed),
            ("persona_batches_total", "counter", "", self.batches),
            ("persona_batch_rows", "gauge", "", self.last_batch_rows),
            ("persona_batch_seconds", "gauge", "", self.last_batch_seconds),
            ("persona_end_to_end_latency_seconds", "gauge", "", self.last_end_to_end_seconds),
            ("persona_collector_requests_total", "counter", 'status="accepted"', self.requests),
            (
                "persona_collector_requests_total",
                "counter",
                'status="refused"',
                self.requests_refused,
            ),
            ("persona_spool_pending_bytes", "gauge", "", self.spool_pending_bytes),
        ]
        lines, typed = [], set()
        for name, kind, labels, value in rows:
            if name not in typed:
                lines.append(f"# TYPE {name} {kind}")
                typed.add(name)
            lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
        with self._lock:  # buckets, sum and count from the same moment
            buckets, total = list(self.spool_fsync_buckets), self.spool_fsync_seconds
        if any(buckets):  # only where the spool is written (the collector)
            name = "persona_spool_fsync_seconds"
            lines.append(f"# TYPE {name} histogram")
            cumulative = 0
            for le, count in zip([*FSYNC_BUCKETS, "+Inf"], buckets, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
            lines.append(f"{name}_sum {total}")
            lines.append(f"{name}_count {cumulative}")
        return "\n".join(lines) + "\n"


PIPELINE_FIELDS = (
    "events_good",
    "events_failed",
    "batches",
    "last_batch_rows",
    "last_batch_seconds",
    "last_end_to_end_seconds",
)
METRICS = Metrics()

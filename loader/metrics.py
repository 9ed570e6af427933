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
    events_suppressed: int = 0  # dropped: their ids are suppressed (a forget request)
    batches: int = 0
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0
    # collector_tstamp -> warehouse commit, of the newest event in the last batch
    last_end_to_end_seconds: float = 0.0
    # input rows typed column by column (the fast path), or one by one by the per-line parser
    # or per-record enrichment (the slow path: unusual rows, failed rows, a block path's bug)
    rows_fast: int = 0
    rows_slow: int = 0
    requests: int = 0
    requests_refused: int = 0
    open_connections: int = 0
    # connections the collector closed on its own: a request head or body that did not arrive
    # in time (408), or a connection over --max-connections (503)
    closed_header_timeout: int = 0
    closed_body_timeout: int = 0
    closed_over_limit: int = 0
    collector_restarts: int = 0  # HTTP processes started again after dying (the loader's count)
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
        """Prometheus' text format 0.0.4: each family's ``# HELP`` and ``# TYPE``, then its
        samples, so a scraper knows what each number means without this source."""
        with self._lock:  # every value, and the histogram's buckets, from the same moment
            values = {name: getattr(self, name) for name in _FIELD_NAMES}
            buckets, total = list(self.spool_fsync_buckets), self.spool_fsync_seconds
        lines = []
        for name, kind, help_text, samples in FAMILIES:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, field_name in samples:
                value = values[field_name]
                lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
        if any(buckets):  # only where the spool is written (the collector)
            name = "persona_spool_fsync_seconds"
            lines.append(f"# HELP {name} {FSYNC_HELP}")
            lines.append(f"# TYPE {name} histogram")
            cumulative = 0
            for le, count in zip([*FSYNC_BUCKETS, "+Inf"], buckets, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
            lines.append(f"{name}_sum {total}")
            lines.append(f"{name}_count {cumulative}")
        return "\n".join(lines) + "\n"


# name, type, help, and the samples: (labels, the Metrics field that holds the value)
FAMILIES: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("persona_events_total", "counter",
     "Events committed to the warehouse: good, or failed (kept in atomic.failed_events).",
     (('status="good"', "events_good"), ('status="failed"', "events_failed"))),
    ("persona_events_suppressed_total", "counter",
     "Events dropped before any batch because an id they carry is suppressed (persona forget).",
     (("", "events_suppressed"),)),
    ("persona_batches_total", "counter", "Batches committed to the warehouse.",
     (("", "batches"),)),
    ("persona_batch_rows", "gauge", "Events in the last committed batch.",
     (("", "last_batch_rows"),)),
    ("persona_batch_seconds", "gauge", "Seconds the last batch's warehouse write took.",
     (("", "last_batch_seconds"),)),
    ("persona_end_to_end_latency_seconds", "gauge",
     "Seconds from collector receipt to warehouse commit, of the newest event in the last batch.",
     (("", "last_end_to_end_seconds"),)),
    ("persona_rows_total", "counter",
     "Input rows typed column by column (fast) or one by one (slow: unusual or failed rows, "
     "or a block the fast path could not handle).",
     (('path="fast"', "rows_fast"), ('path="slow"', "rows_slow"))),
    ("persona_collector_requests_total", "counter",
     "Collector requests: accepted (spooled, then acknowledged), or refused with a status "
     "(413, 414 or 431: too large; 503: spool full).",
     (('status="accepted"', "requests"), ('status="refused"', "requests_refused"))),
    ("persona_collector_open_connections", "gauge", "Client connections open now.",
     (("", "open_connections"),)),
    ("persona_collector_closed_connections_total", "counter",
     "Connections the collector closed: a request head or body not in within its timeout "
     "(408), or a connection over the limit (503).",
     (('reason="header_timeout"', "closed_header_timeout"),
      ('reason="body_timeout"', "closed_body_timeout"),
      ('reason="over_limit"', "closed_over_limit"))),
    ("persona_collector_restarts_total", "counter",
     "Times the collector's HTTP process died and was started again.",
     (("", "collector_restarts"),)),
    ("persona_spool_pending_bytes", "gauge",
     "Bytes spooled and acknowledged but not yet committed to the warehouse.",
     (("", "spool_pending_bytes"),)),
)  # fmt: skip
FSYNC_HELP = "Seconds each group commit's fsync of the spool took."
_FIELD_NAMES = tuple(dict.fromkeys(f for *_, samples in FAMILIES for _, f in samples))


PIPELINE_FIELDS = (
    "events_good",
    "events_failed",
    "events_suppressed",
    "batches",
    "last_batch_rows",
    "last_batch_seconds",
    "last_end_to_end_seconds",
    "collector_restarts",
    "rows_fast",
    "rows_slow",
)
METRICS = Metrics()

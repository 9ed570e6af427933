"""The record of every fired intervention and the durable outbox of its webhook deliveries, in
the warehouse the live process holds (schema ``interventions``), written through the live
process's own connection (DuckDB has one writer process: ARCHITECTURE.md, decision 10).

A fire and its deliveries are committed in one transaction before anything is sent (DuckDB
syncs its write-ahead log at commit): a ``kill -9`` after that loses nothing, and the restarted
process sends the deliveries still ``pending`` again (at-least-once, same delivery id). Other
processes read the tables from the published read-only snapshot (``serving.snapshot``), or the
warehouse itself once the live process has stopped:

    interventions.fired        one row per intervention and target: what fired, for whom, when
    interventions.deliveries   one row per fired intervention and webhook endpoint: where,
                               attempts, status (pending, delivered, dead), the last error
    interventions.dead_letters the deliveries that gave up (a view)
    interventions.log          fired joined with their deliveries (a view)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

SCHEMA = "interventions"
FLUSH_SECONDS = 0.2  # how often webhook attempts' outcomes are written
_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.fired (
    seq bigint not null,
    intervention_id varchar not null,
    name varchar not null,
    version integer not null,
    source varchar not null,
    target_key varchar not null,
    target_id varchar not null,
    occurrence varchar,
    attributes json,
    trigger_event_id varchar,
    sse_subscribers integer,
    fired_at timestamptz not null
);
create table if not exists {SCHEMA}.deliveries (
    delivery_id varchar primary key,
    intervention_id varchar not null,
    seq bigint not null,
    endpoint varchar not null,
    url varchar not null,
    status varchar not null,
    attempts integer not null,
    last_status integer,
    last_error varchar,
    created_at timestamptz not null,
    next_attempt_at timestamptz,
    finished_at timestamptz
);
create or replace view {SCHEMA}.dead_letters as
select delivery_id, intervention_id, seq, endpoint, url, attempts, last_status, last_error,
    created_at, finished_at as gave_up_at
from {SCHEMA}.deliveries where status = 'dead';
create or replace view {SCHEMA}.log as
select f.seq, f.intervention_id, f.name, f.version, f.source, f.target_key, f.target_id,
    f.fired_at, f.sse_subscribers, d.endpoint, d.delivery_id, d.status, d.attempts,
    d.last_status, d.last_error, d.finished_at
from {SCHEMA}.fired f left join {SCHEMA}.deliveries d using (intervention_id);
"""


@dataclass
class Fire:
    """One intervention for one target, as recorded and sent."""

    seq: int
    intervention_id: str
    name: str
    version: int
    source: str  # rule | push
    target_key: str
    target_id: str
    attributes: dict[str, str]
    fired_at: datetime
    occurrence: str | None = None
    trigger_event_id: str | None = None
    sse_subscribers: int = 0

    def instance(self) -> dict[str, Any]:
        """The SDK's ``InterventionInstance``."""
        return {
            "intervention_id": self.intervention_id, "name": self.name, "version": self.version,
            "target_attribute_key": {"name": self.target_key, "id": self.target_id},
            "attributes": self.attributes,
        }  # fmt: skip

    def body(self, delivery_id: str) -> bytes:
        """What a webhook receives: the instance, when it fired and the delivery's id (the
        same bytes on every attempt, after a restart too)."""
        import orjson

        return orjson.dumps({**self.instance(), "fired_at": self.fired_at.isoformat(),
                             "delivery_id": delivery_id})  # fmt: skip


@dataclass
class Delivery:
    delivery_id: str
    intervention_id: str
    seq: int
    endpoint: str
    url: str
    body: bytes
    attempts: int = 0
    due: float = 0.0  # epoch seconds


def utcnow() -> datetime:
    return datetime.now(UTC)


class Outbox:
    """The tables above, over one cursor of the live process's connection (a lock serializes
    the loader's thread, the API's and the webhook workers')."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con.cursor()
        self._lock = threading.Lock()
        self._outcomes: list[tuple[Any, ...]] = []
        self._outcomes_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._stopping = threading.Event()
        with self._lock:
            self.con.execute(_DDL)
            rows = self.con.execute(f"select coalesce(max(seq), 0) from {SCHEMA}.fired")
            self.last_seq: int = rows.fetchall()[0][0]

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq

    def record(self, fires: Sequence[Fire], deliveries: Sequence[Delivery]) -> None:
        """Both, in one committed transaction, or neither (an exception). Rows go in as Arrow
        tables: DuckDB's executemany costs milliseconds per row."""
        import orjson
        import pyarrow as pa

        if not fires:
            return
        fired = pa.table({
            "seq": pa.array([f.seq for f in fires], pa.int64()),
            "intervention_id": [f.intervention_id for f in fires],
            "name": [f.name for f in fires],
            "version": pa.array([f.version for f in fires], pa.int32()),
            "source": [f.source for f in fires],
            "target_key": [f.target_key for f in fires],
            "target_id": [f.target_id for f in fires],
            "occurrence": pa.array([f.occurrence for f in fires], pa.string()),
            "attributes": [orjson.dumps(f.attributes).decode() for f in fires],
            "trigger_event_id": pa.array([f.trigger_event_id for f in fires], pa.string()),
            "sse_subscribers": pa.array([f.sse_subscribers for f in fires], pa.int32()),
            "fired_at": pa.array([f.fired_at for f in fires], pa.timestamp("us", tz="UTC")),
        })  # fmt: skip
        now = utcnow()
        sent = pa.table({
            "delivery_id": pa.array([d.delivery_id for d in deliveries], pa.string()),
            "intervention_id": pa.array([d.intervention_id for d in deliveries], pa.string()),
            "seq": pa.array([d.seq for d in deliveries], pa.int64()),
            "endpoint": pa.array([d.endpoint for d in deliveries], pa.string()),
            "url": pa.array([d.url for d in deliveries], pa.string()),
        })  # fmt: skip
        with self._lock:
            self.con.register("_persona_fired", fired)
            self.con.register("_persona_sent", sent)
            self.con.execute("begin")
            try:
                self.con.execute(f"insert into {SCHEMA}.fired by name select * from _persona_fired")
                if deliveries:
                    self.con.execute(
                        f"insert into {SCHEMA}.deliveries by name select *, 'pending' as status, "
                        "0 as attempts, ?::timestamptz as created_at, "
                        "?::timestamptz as next_attempt_at from _persona_sent",
                        [now, now],
                    )
                self.con.execute("commit")
            except BaseException:
                self.con.execute("rollback")
                raise
            finally:
                self.con.unregister("_persona_fired")
                self.con.unregister("_persona_sent")

    def attempted(self, delivery_id: str, status: str, attempts: int, last_status: int | None,
                  last_error: str | None, next_attempt_at: datetime | None) -> None:  # fmt: skip
        """An attempt's outcome, written with the others of the last ``FLUSH_SECONDS`` in one
        transaction by a background thread: one endpoint's many outcomes never queue the others
        (or the loader's fires) behind a commit each. Losing the last ones to a ``kill -9``
        only means sending those again (same delivery ids): at-least-once holds."""
        finished = utcnow() if status != "pending" else None
        row = (delivery_id, status, attempts, last_status, last_error, next_attempt_at, finished)
        with self._outcomes_lock:
            self._outcomes.append(row)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                                 name="webhook-outcomes")  # fmt: skip
                self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stopping.wait(FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        with self._outcomes_lock:
            rows, self._outcomes = self._outcomes, []
        if not rows:
            return
        latest = {r[0]: r for r in rows}  # a delivery's last outcome wins
        cols = list(zip(*latest.values(), strict=True))
        table = pa.table({
            "delivery_id": pa.array(cols[0], pa.string()),
            "status": pa.array(cols[1], pa.string()),
            "attempts": pa.array(cols[2], pa.int32()),
            "last_status": pa.array(cols[3], pa.int32()),
            "last_error": pa.array(cols[4], pa.string()),
            "next_attempt_at": pa.array(cols[5], pa.timestamp("us", tz="UTC")),
            "finished_at": pa.array(cols[6], pa.timestamp("us", tz="UTC")),
        })  # fmt: skip
        with self._lock:
            self.con.register("_persona_outcomes", table)
            try:
                self.con.execute(
                    f"update {SCHEMA}.deliveries d set status = o.status, attempts = o.attempts, "
                    "last_status = o.last_status, last_error = o.last_error, "
                    "next_attempt_at = o.next_attempt_at, finished_at = o.finished_at "
                    "from _persona_outcomes o where d.delivery_id = o.delivery_id"
                )
            finally:
                self.con.unregister("_persona_outcomes")

    def close(self) -> None:
        """Write the outcomes not yet written (the process is stopping)."""
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()

    # --- state after a restart
    def fired_state(self) -> dict[tuple[str, str, str, str | None], float]:
        """When each rule last fired for each target (and occurrence)."""
        with self._lock:
            rows = self.con.execute(
                f"select name || '_v' || version, target_key, target_id, occurrence, "
                f"epoch(max(fired_at)) from {SCHEMA}.fired where source = 'rule' group by all"
            ).fetchall()
        return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}

    def recent(self, since: datetime, limit: int) -> list[Fire]:
        """The latest fires (oldest first), for the SSE replay window."""
        import orjson

        with self._lock:
            rows = self.con.execute(
                f"select seq, intervention_id, name, version, source, target_key, target_id, "
                f"attributes, fired_at from {SCHEMA}.fired where fired_at >= ? "
                f"order by seq desc limit ?", [since, limit],
            ).fetchall()  # fmt: skip
        return [
            Fire(r[0], r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7] or "{}"), r[8])
            for r in reversed(rows)
        ]

    def pending(self) -> list[tuple[str, str, int, str, str, int, float, Fire]]:
        """Deliveries not yet done: (delivery id, intervention id, seq, endpoint, url, attempts,
        due epoch, the fire)."""
        import orjson

        with self._lock:
            rows = self.con.execute(
                f"select d.delivery_id, d.intervention_id, d.seq, d.endpoint, d.url, d.attempts, "
                f"epoch(coalesce(d.next_attempt_at, d.created_at)), f.name, f.version, f.source, "
                f"f.target_key, f.target_id, f.attributes, f.fired_at "
                f"from {SCHEMA}.deliveries d join {SCHEMA}.fired f using (intervention_id) "
                f"where d.status = 'pending' order by d.seq"
            ).fetchall()
        return [
            (r[0], r[1], r[2], r[3], r[4], r[5], r[6],
             Fire(r[2], r[1], r[7], r[8], r[9], r[10], r[11], orjson.loads(r[12] or "{}"),
                  r[13]))
            for r in rows
        ]  # fmt: skip

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.con.execute(sql, list(params)).fetchall()

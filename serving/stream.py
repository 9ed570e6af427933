"""Stream attributes: updated per event as the loader accepts it, read from the online store.

Each attribute keeps, per key (a device, a session, a user), its aggregation *state*, not its
value: buckets of ``[start, count, numbers, sum, min, max, first_ts, first, last_ts, last,
uniques]``. An attribute without a period has one bucket; one with a period has buckets of a
sixtieth of it, and a read keeps those that end inside the period before *now*, so "views in
the last hour" falls back to 0 an hour after the last view without any event arriving.
Timestamps are the collector's (``collector_tstamp``, when the event arrived).

The state is derived data: after a restart it is rebuilt from the recent events in the
warehouse (``rebuild``), and a group published while the process runs is backfilled the same
way. Event ids already counted are skipped, so that the spool's replay after a crash (the
loader is at-least-once) counts nothing twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from serving.definitions import (
    CLIENT_SESSION,
    CLIENT_SESSION_KEYS,
    MAX_UNIQUE,
    Group,
    StreamAttribute,
    key_value,
)
from serving.stores.base import OnlineStore

log = logging.getLogger("persona.serving.stream")

# Attributes without a period (and groups without a ttl) are rebuilt from this much history.
LIFETIME_WINDOW_SECONDS = 7 * 86400
# Event ids remembered to skip a replayed event (the spool replays what was not acknowledged).
SEEN_IDS = 100_000
# How often the loader's thread looks for idle keys to evict (StreamEngine.evict).
EVICT_EVERY_SECONDS = 60.0
_START, _COUNT, _N, _SUM, _MIN, _MAX, _FIRST_TS, _FIRST, _LAST_TS, _LAST, _UNIQUE = range(11)


def stream_key(group: Group, identifier: str) -> str:
    return f"s:{group.full_name}:{identifier}"


def epoch(value: Any) -> float:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return time.time()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return orjson.loads(orjson.dumps(value, default=str))


def _width(attribute: StreamAttribute) -> float:
    return max(1.0, attribute.period / 60) if attribute.period else 0.0


def update(attribute: StreamAttribute, buckets: list[list[Any]], ts: float, value: Any) -> None:
    """Add one matching event (its property's ``value``) at time ``ts`` to ``buckets``."""
    width = _width(attribute)
    start = math.floor(ts / width) * width if width else 0.0
    bucket = None
    for b in reversed(buckets):  # events arrive roughly in order: the last bucket, usually
        if b[_START] == start:
            bucket = b
            break
    if bucket is None:
        bucket = [start, 0, 0, 0.0, None, None, None, None, None, None, []]
        buckets.append(bucket)
        if width:
            buckets.sort(key=lambda b: b[_START])
            horizon = time.time() - attribute.period - width  # type: ignore[operator]
            while buckets and buckets[0][_START] < horizon:
                buckets.pop(0)
    bucket[_COUNT] += 1
    if value is None:
        return
    agg = attribute.aggregation
    if agg in ("sum", "min", "max", "mean"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if not math.isfinite(number):
            return
        bucket[_N] += 1
        bucket[_SUM] += number
        bucket[_MIN] = number if bucket[_MIN] is None else min(bucket[_MIN], number)
        bucket[_MAX] = number if bucket[_MAX] is None else max(bucket[_MAX], number)
    elif agg == "first":
        if bucket[_FIRST_TS] is None or ts < bucket[_FIRST_TS]:
            bucket[_FIRST_TS], bucket[_FIRST] = ts, _jsonable(value)
    elif agg == "last":
        if bucket[_LAST_TS] is None or ts >= bucket[_LAST_TS]:
            bucket[_LAST_TS], bucket[_LAST] = ts, _jsonable(value)
    elif agg == "unique_list":
        values = value if isinstance(value, list) else [value]
        unique = bucket[_UNIQUE]
        for v in values:
            v = _jsonable(v)
            if v in unique:
                unique.remove(v)
            unique.append(v)
        del unique[:-MAX_UNIQUE]


def default(attribute: StreamAttribute) -> Any:
    if attribute.default is not None:
        return attribute.default
    if attribute.aggregation in ("counter", "sum"):
        return 0
    if attribute.aggregation == "unique_list":
        return []
    return None


def value(attribute: StreamAttribute, buckets: Sequence[Sequence[Any]] | None, now: float) -> Any:
    """The attribute's value from its state at time ``now``."""
    if buckets and attribute.period:
        width = _width(attribute)
        buckets = [b for b in buckets if b[_START] + width > now - attribute.period]
    if not buckets:
        return default(attribute)
    agg = attribute.aggregation
    if agg == "counter":
        result: Any = sum(b[_COUNT] for b in buckets)
    elif agg in ("sum", "mean"):
        n = sum(b[_N] for b in buckets)
        if not n:
            return default(attribute)
        total = sum(b[_SUM] for b in buckets)
        result = total if agg == "sum" else total / n
    elif agg in ("min", "max"):
        got = [b[_MIN if agg == "min" else _MAX] for b in buckets]
        got = [g for g in got if g is not None]
        if not got:
            return default(attribute)
        result = min(got) if agg == "min" else max(got)
    elif agg in ("first", "last"):
        ts_at, v_at = (_FIRST_TS, _FIRST) if agg == "first" else (_LAST_TS, _LAST)
        got = [(b[ts_at], b[v_at]) for b in buckets if b[ts_at] is not None]
        if not got:
            return default(attribute)
        return (min(got, key=lambda p: p[0]) if agg == "first" else max(got, key=lambda p: p[0]))[1]
    else:  # unique_list: oldest bucket first, a value at its latest place
        merged: dict[Any, None] = {}
        for b in buckets:
            for v in b[_UNIQUE]:
                key = orjson.dumps(v) if isinstance(v, dict | list) else v
                merged.pop(key, None)
                merged[key] = None
        values = [orjson.loads(k) if isinstance(k, bytes) else k for k in merged]
        return values[-MAX_UNIQUE:]
    if attribute.type in ("int32", "int64") and isinstance(result, float):
        return round(result)
    if attribute.type in ("double", "float"):
        return float(result)
    return result


def group_values(group: Group, state: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """Every attribute's value for one key, from its stored state (None: nothing seen)."""
    buckets = (state or {}).get("a", {})
    if state and group.ttl and now - state.get("t", now) > group.ttl:
        buckets = {}  # expired: the group's ttl has passed since its last event
    return {a.name: value(a, buckets.get(a.name), now) for a in group.attributes}


class StreamEngine:
    """Aggregates events into the published stream groups' state and writes each changed
    key's state to the online store (one ``put_many`` per call of ``observe``).

    ``observe`` is called on the loader's thread (the pipeline's ``validate`` hook), before the
    batch holding the events is committed; ``committed`` after it is. Publishing a group calls
    ``add_group`` on the API's thread: a lock keeps the two apart."""

    def __init__(self, store: OnlineStore, lifetime: float = LIFETIME_WINDOW_SECONDS) -> None:
        self.store = store
        self.lifetime = lifetime  # the window of attributes without a period or ttl
        self._evicted = time.monotonic()
        self.groups: dict[str, Group] = {}  # by full name
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._seen: dict[str, None] = {}
        self._pending: list[Mapping[str, Any]] = []  # observed, not yet committed
        self.events = 0
        # called after each observe with (its events, the (group, id) keys it changed):
        # interventions (serving.interventions) evaluate their rules there
        self.listeners: list[Callable[[list[Mapping[str, Any]], set[tuple[str, str]]], None]] = []

    # --- the loader's side
    def observe(self, events: Iterable[Mapping[str, Any]], *, pending: bool = True) -> int:
        events = events if isinstance(events, list) else list(events)
        with self._lock:
            touched = self._apply(events, list(self.groups.values()), pending=pending)
        self._write(touched)
        if time.monotonic() - self._evicted >= EVICT_EVERY_SECONDS:
            self.evict()
        for listener in self.listeners:
            listener(events, touched)
        return len(touched)

    def evict(self, now: float | None = None) -> int:
        """Forgets the keys idle for longer than their group's window (``window``): what a
        restart would not rebuild either, so memory (here and in the store) is bounded by the
        visitors of that window, and an evicted key reads as after a restart."""
        now = time.time() if now is None else now
        self._evicted = time.monotonic()
        with self._lock:
            horizons = {name: window(group, self.lifetime) for name, group in self.groups.items()}
            idle = [key for key, state in self.state.items()
                    if now - state["t"] > horizons.get(key[0], 0.0)]  # fmt: skip
            for key in idle:
                del self.state[key]
        self.store.delete(f"s:{name}:{identifier}" for name, identifier in idle)
        if idle:
            log.info("stream attributes: %d idle keys evicted", len(idle))
        return len(idle)

    def committed(self) -> None:
        """Everything observed so far is in the warehouse: a backfill will find it there."""
        with self._lock:
            self._pending = []

    def _apply(
        self, events: Iterable[Mapping[str, Any]], groups: list[Group], *, pending: bool
    ) -> set[tuple[str, str]]:
        touched: set[tuple[str, str]] = set()
        seen = self._seen
        for event in events:
            event_id = event.get("event_id")
            if event_id is not None:
                if event_id in seen:
                    continue
                seen[event_id] = None
                if len(seen) > SEEN_IDS:
                    del seen[next(iter(seen))]
            if pending:
                self._pending.append(event)
            self.events += 1
            self._aggregate(event, groups, touched)
        return touched

    def _aggregate(
        self, event: Mapping[str, Any], groups: list[Group], touched: set[tuple[str, str]]
    ) -> None:
        ts = epoch(event.get("collector_tstamp"))
        for group in groups:
            identifier = key_value(event, group.key)
            if not identifier:
                continue
            hit = False
            for attribute in group.attributes:
                if not attribute.matches(event):
                    continue
                key = (group.full_name, str(identifier))
                state = self.state.get(key)
                if state is None:
                    state = self.state[key] = {"t": ts, "a": {}}
                buckets = state["a"].setdefault(attribute.name, [])
                got = attribute.prop.get(event) if attribute.prop is not None else None
                update(attribute, buckets, ts, got)
                hit = True
            if hit:
                key = (group.full_name, str(identifier))
                self.state[key]["t"] = max(self.state[key]["t"], ts)
                touched.add(key)

    def _write(self, touched: Iterable[tuple[str, str]]) -> None:
        items = {}
        with self._lock:
            for full_name, identifier in touched:
                state = self.state.get((full_name, identifier))
                if state is not None:
                    items[f"s:{full_name}:{identifier}"] = orjson.dumps(state)
        self.store.put_many(items)

    # --- definitions
    def set_groups(self, groups: Iterable[Group]) -> None:
        with self._lock:
            self.groups = {g.full_name: g for g in groups if g.is_stream}

    def add_group(
        self, group: Group, history: Callable[[Group], Iterable[Mapping[str, Any]]]
    ) -> None:
        """Start computing ``group`` (new, or a new definition of a published one): its state is
        rebuilt from ``history(group)`` (the warehouse's recent events) and the events
        observed but not yet committed, then it follows the live stream."""
        with self._lock:
            self._drop_state(group.full_name)
            pending = list(self._pending)  # first: a commit now clears it, then the query sees it
            events = {e.get("event_id"): e for e in history(group)}
            events.update((e.get("event_id"), e) for e in pending)
            touched: set[tuple[str, str]] = set()
            for event in sorted(events.values(), key=lambda e: epoch(e.get("collector_tstamp"))):
                self._aggregate(event, [group], touched)
            self.groups[group.full_name] = group
        self._write(touched)
        log.info("stream group %s: rebuilt %d keys from %d events",
                 group.full_name, len(touched), len(events))  # fmt: skip

    def remove_group(self, full_name: str) -> None:
        with self._lock:
            self.groups.pop(full_name, None)
            self._drop_state(full_name)

    def _drop_state(self, full_name: str) -> None:
        for key in [k for k in self.state if k[0] == full_name]:
            del self.state[key]

    def forget(self, identifiers: Iterable[str]) -> int:
        """Drop every key's state about one of ``identifiers`` (``persona forget``); the
        online store's copies are deleted by ``OnlineStore.forget``."""
        ids = set(identifiers)
        with self._lock:
            gone = [k for k in self.state if k[1] in ids]
            for key in gone:
                del self.state[key]
            keys = [g.key for g in self.groups.values()]
            self._pending = [e for e in self._pending if not ids & {str(e.get(k)) for k in keys}]
        return len(gone)

    def rebuild(self, history: Iterable[Mapping[str, Any]]) -> int:
        """After a restart: every group's state from the warehouse's recent events (oldest
        first); their ids are remembered so that the spool's replay is not counted twice."""
        with self._lock:
            self.state.clear()
            touched = self._apply(history, list(self.groups.values()), pending=False)
        self._write(touched)
        return len(touched)


def item_events(item: Any) -> list[Mapping[str, Any]]:
    """The accepted events a pipeline item holds: a Chunk's rows, an Event dict; none for a
    FailedEvent. The live process converts a chunk once for every consumer of its rows."""
    table = getattr(item, "table", None)
    if table is not None:
        return table.to_pylist() if table.num_rows else []
    return [item] if isinstance(item, dict) else []


def window(group: Group, lifetime: float = LIFETIME_WINDOW_SECONDS) -> float:
    """How far back a rebuild reads for ``group``: its longest period, or its ttl (or
    ``lifetime``) when an attribute has no period."""
    periods = [a.period for a in group.attributes]
    if any(p is None for p in periods):
        return group.ttl or lifetime
    return max(p for p in periods if p is not None)


def columns(groups: Iterable[Group]) -> set[str]:
    """The event columns the groups read (with those every event needs)."""
    needed = {"event_id", "collector_tstamp", "event_vendor", "event_name", "event_version"}
    for group in groups:
        needed.add(group.key)
        if group.key in CLIENT_SESSION_KEYS:
            needed.add(CLIENT_SESSION)
        for attribute in group.attributes:
            needed |= attribute.columns
    return needed

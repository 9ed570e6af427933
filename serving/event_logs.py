"""Event logs (Snowplow Signals' "agentic context"): the last events of a session, as data.

An event log names the events to keep (``events``: an event by vendor/name/version and, for
each, the properties to project from it), how many (``max_events``, at most 100) and how old
(``max_age_seconds``, at most 3600), for one attribute key (``domain_sessionid``, as Signals'
v1), with a free-text ``prompt`` returned alongside. The definition is Signals' JSON
(``snowplow_signals.EventLog``); one that cannot be served raises ``DefinitionError`` naming
the log and why, and the running ones are untouched.

The live process hands each accepted event to ``EventLogs.observe`` (the loader's
validate hook, beside the stream attributes); every published log that selects the event
appends its projection to a bounded ring per session in the online store
(``OnlineStore.push_lists``: the last ``max_events`` entries, the key expiring
``max_age_seconds`` after its last event). Event ids already buffered are skipped
(the last 100,000: the spool's replay after a crash), and a read keeps the entries younger
than ``max_age_seconds``, each event once. The rings are derived
data: after a restart (and when a log is published) they are rebuilt from ``atomic.events``.

``persona_context`` is built in: the log the narrative context (``serving.context``) reads when
a published log does not say more (page views, product views, carts, purchases, searches). It
is published at its first read, not before: a process nobody asks for context keeps no rings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from serving.definitions import NAME_RE, EventRef, Property, compile_property
from serving.errors import AlreadyExists, BadRequest, DefinitionError, NotFound
from serving.stream import SEEN_IDS, epoch

log = logging.getLogger("persona.serving.event_logs")

# Signals' limits (snowplow_signals.models.EventLog).
MAX_EVENTS = 100
MAX_AGE_SECONDS = 3600
MAX_SELECTIONS = 20
MAX_PROPERTIES = 50
MAX_PROMPT = 3800
KEYS = ("domain_sessionid",)  # Signals' v1: a session's recent activity
BUILTIN = "persona_context"

_SP = "com.snowplowanalytics.snowplow"
_ECOM = "com.snowplowanalytics.snowplow.ecommerce"


def _entity(name: str, path: str, output: str) -> dict[str, Any]:
    return {"type": "entity", "vendor": _ECOM, "name": name, "major_version": 1, "path": path,
            "output_name": output}  # fmt: skip


BUILTIN_SPEC: dict[str, Any] = {
    "name": BUILTIN, "version": 1, "owner": "persona@localhost",
    "description": "What Persona's narrative context tells of a session: pages, products "
    "viewed, carted and bought, searches.",
    "attribute_key": {"name": "domain_sessionid"}, "max_events": 50,
    "max_age_seconds": MAX_AGE_SECONDS,
    "events": [
        {"event": {"vendor": _SP, "name": "page_view", "major_version": 1},
         "properties": [{"type": "atomic", "name": "page_urlpath"},
                        {"type": "atomic", "name": "page_title"}]},
        {"event": {"vendor": _ECOM, "name": "snowplow_ecommerce_action", "major_version": 1},
         "properties": [
             {"type": "event", "vendor": _ECOM, "name": "snowplow_ecommerce_action",
              "major_version": 1, "path": "$.type", "output_name": "action"},
             _entity("product", "$.id", "product_id"),
             _entity("product", "$.category", "category"),
             _entity("product", "$.price", "price"),
             _entity("product", "$.currency", "currency"),
             _entity("transaction", "$.revenue", "revenue"),
             _entity("transaction", "$.currency", "revenue_currency"),
         ]},
        {"event": {"vendor": _SP, "name": "site_search", "major_version": 1},
         "properties": [{"type": "event", "vendor": _SP, "name": "site_search",
                         "major_version": 1, "path": "$.terms", "output_name": "terms"}]},
    ],
}  # fmt: skip


@dataclass(frozen=True)
class Selection:
    event: EventRef
    properties: tuple[tuple[str, Property], ...]  # (output name, where from)


@dataclass(frozen=True)
class EventLog:
    name: str
    version: int
    key: str
    max_events: int
    max_age_seconds: int
    selections: tuple[Selection, ...]
    prompt: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        """Names the rings: a new definition starts new rings (the old ones expire)."""
        return hashlib.sha256(orjson.dumps(self.raw, option=orjson.OPT_SORT_KEYS)).hexdigest()[:10]

    def ring_key(self, identifier: str) -> str:
        return f"l:{self.name}:{self.digest}:{identifier}"

    @property
    def columns(self) -> set[str]:
        needed = {"event_id", "collector_tstamp", "event_vendor", "event_name", "event_version",
                  "domain_userid", "user_id", self.key}  # fmt: skip
        for s in self.selections:
            needed |= {p.column for _, p in s.properties}
        return needed

    def entry(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """The ring entry for ``event`` (None if no selection matches): its time (ms), id,
        name, device and user (to find the profile; never shown raw) and projection."""
        for selection in self.selections:
            if selection.event.matches(event):
                projected = {out: _plain(p.get(event)) for out, p in selection.properties}
                return {"t": round(epoch(event.get("collector_tstamp")) * 1000),
                        "id": event.get("event_id"), "e": event.get("event_name"),
                        "d": event.get("domain_userid"), "u": event.get("user_id"),
                        "p": projected}  # fmt: skip
        return None


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return orjson.loads(orjson.dumps(value, default=str))


def _fail(where: str, why: str) -> DefinitionError:
    return DefinitionError(f"{where}: {why}")


def _bounded_int(spec: Mapping[str, Any], key: str, top: int, where: str) -> int:
    value = spec.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= top:
        raise _fail(where, f"{key} must be an integer from 1 to {top}, got {value!r}")
    return value


def _event(spec: Any, where: str) -> EventRef:
    if not isinstance(spec, Mapping):
        raise _fail(where, f"event must be an object with vendor, name and version, got {spec!r}")
    if spec.get("event_specification_id"):
        raise _fail(where, "event specifications are not supported: name the event")
    name, vendor = spec.get("name"), spec.get("vendor")
    if not isinstance(name, str) or not name:
        raise _fail(where, "the event needs a name (the event_name column)")
    version, major = spec.get("version"), spec.get("major_version")
    if version is not None and major is not None:
        raise _fail(where, "give version or major_version, not both")
    if version is not None:
        if (
            not isinstance(version, str)
            or len(version.split("-")) != 3
            or not all(p.isdigit() for p in version.split("-"))
        ):
            raise _fail(where, f"event version must look like 1-0-0, got {version!r}")
        major = int(version.split("-")[0])
    elif major is not None and (not isinstance(major, int) or isinstance(major, bool) or major < 1):
        raise _fail(where, f"major_version must be a positive integer, got {major!r}")
    return EventRef(vendor if isinstance(vendor, str) and vendor else None, name, major)


def _output_name(spec: Mapping[str, Any]) -> str:
    if spec.get("output_name"):
        return str(spec["output_name"])
    if spec.get("type") == "atomic":
        return str(spec.get("name"))
    path = str(spec.get("path") or "")
    return path.rstrip("]").replace("[", ".").split(".")[-1]


def compile_event_log(spec: Any) -> EventLog:
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"an event log must be a JSON object, got {spec!r}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise DefinitionError(f"event log: name must be 1-128 letters, digits or underscores, "
                              f"got {name!r}")  # fmt: skip
    where = f"event log {name}"
    version = spec.get("version") or 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(where, f"version must be a positive integer, got {version!r}")
    key_spec = spec.get("attribute_key")
    key = key_spec.get("name") if isinstance(key_spec, Mapping) else key_spec
    if key not in KEYS:
        raise _fail(where, f"attribute_key must be {' or '.join(KEYS)} (a session's recent "
                           f"activity, as Signals' v1), got {key!r}")  # fmt: skip
    prompt = spec.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT):
        raise _fail(where, f"prompt must be a string of at most {MAX_PROMPT} characters")
    max_events = _bounded_int(spec, "max_events", MAX_EVENTS, where)
    max_age = _bounded_int(spec, "max_age_seconds", MAX_AGE_SECONDS, where)
    events = spec.get("events")
    if not isinstance(events, list) or not 0 < len(events) <= MAX_SELECTIONS:
        raise _fail(where, f"events must list 1 to {MAX_SELECTIONS} event selections")
    selections = []
    for i, selection in enumerate(events):
        at = f"{where}: events[{i}]"
        if not isinstance(selection, Mapping):
            raise _fail(at, "must be an object with event and properties")
        ref = _event(selection.get("event"), at)
        props = selection.get("properties")
        if not isinstance(props, list) or not 0 < len(props) <= MAX_PROPERTIES:
            raise _fail(at, f"properties must list 1 to {MAX_PROPERTIES} properties")
        compiled: list[tuple[str, Property]] = []
        for j, prop in enumerate(props):
            pat = f"{at}.properties[{j}]"
            out = _output_name(prop) if isinstance(prop, Mapping) else ""
            compiled.append((out, compile_property(prop, pat)))
            if [o for o, _ in compiled].count(out) > 1:
                raise _fail(pat, f"output name {out!r} is used twice: set output_name")
        selections.append(Selection(ref, tuple(compiled)))
    raw = {**{k: v for k, v in spec.items() if v is not None and k != "is_published"},
           "version": version}  # fmt: skip
    return EventLog(name, version, key, max_events, max_age, tuple(selections), prompt, raw)


BUILTIN_LOG = compile_event_log(BUILTIN_SPEC)
History = Callable[[set[str], float], Iterable[Mapping[str, Any]]]


class EventLogs:
    """The event logs' definitions (drafts and published, kept in ``path``) and their rings.

    ``history(columns, seconds)``: the warehouse's events of the last ``seconds``, oldest
    first, with those columns (None: no warehouse; nothing to rebuild from)."""

    def __init__(self, store: Any, path: Path | None = None,
                 history: History | None = None) -> None:  # fmt: skip
        self.store = store
        self.path = path
        self.history = history
        self.drafts: dict[str, EventLog] = {BUILTIN: BUILTIN_LOG}
        self.published: dict[str, EventLog] = {}
        self._pending: list[Mapping[str, Any]] = []  # observed, not yet committed
        self._seen: dict[Any, None] = {}  # event ids buffered: the spool's replay is skipped
        self._lock = threading.RLock()

    # --- the registry (the SDK's publish, get_event_log, delete)
    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        doc = json.loads(self.path.read_text())
        for spec in doc.get("event_logs", []):
            if spec.get("name") == BUILTIN:  # this version's definition, as it was published
                if spec.get("is_published"):
                    self.published[BUILTIN] = BUILTIN_LOG
                continue
            compiled = compile_event_log(spec)
            self.drafts[compiled.name] = compiled
            if spec.get("is_published"):
                self.published[compiled.name] = compiled

    def put(self, spec: Any, *, create: bool, where: str | None = None) -> dict[str, Any]:
        """A new draft (``create``: POST) or a changed one (PUT); a published log keeps
        running its previous definition until it is published again."""
        if isinstance(spec, Mapping) and spec.get("name") == BUILTIN:
            raise DefinitionError(f"event log {BUILTIN!r} is built in; choose another name")
        compiled = compile_event_log(spec)
        if where is not None and where != compiled.name:
            raise BadRequest(f"the body defines event log {compiled.name!r}, the path {where!r}")
        with self._lock:
            if create and compiled.name in self.drafts:
                raise AlreadyExists(f"event log {compiled.name!r} exists; PUT to update it")
            self.drafts[compiled.name] = compiled
            self._persist()
        return self.response(compiled.name)

    def get(self, name: str) -> EventLog:
        got = self.published.get(name) or self.drafts.get(name)
        if got is None:
            raise NotFound(f"event log {name!r} does not exist")
        return got

    def response(self, name: str) -> dict[str, Any]:
        """Signals' ``EventLogResponse``: the latest definition, and whether it runs."""
        draft = self.drafts.get(name) or self.get(name)
        running = self.published.get(name)
        return {**draft.raw, "is_published": running is not None and running.raw == draft.raw,
                "has_published_version": running is not None}  # fmt: skip

    def delete(self, name: str) -> dict[str, Any]:
        if name == BUILTIN:
            raise BadRequest(f"event log {BUILTIN!r} is built in")
        with self._lock:
            if self.drafts.pop(name, None) is None:
                raise NotFound(f"event log {name!r} does not exist")
            self.published.pop(name, None)
            self._persist()
        return {"name": name, "status": "deleted"}

    def publish(self, names: Iterable[str]) -> dict[str, str]:
        """Start (or restart, with its latest definition) buffering each log: its rings are
        rebuilt from the warehouse's recent events and the ones accepted but not committed."""
        todo = []
        for name in names:
            if name not in self.drafts:
                raise NotFound(f"event log {name!r} does not exist")
            todo.append(self.drafts[name])
        for event_log in todo:
            with self._lock:
                pending = list(self._pending)  # first: a commit now clears it, the query sees it
                events = list(self.history(event_log.columns, event_log.max_age_seconds)
                              if self.history is not None else [])  # fmt: skip
                self._write(self._entries([event_log], [*events, *pending]))
                self.published[event_log.name] = event_log
                self._persist()
            log.info("event log %s published: %d recent events", event_log.name, len(events))
        return {"status": "published" if todo else "nothing to publish"}

    def unpublish(self, names: Iterable[str]) -> dict[str, str]:
        with self._lock:
            gone = [n for n in names if self.published.pop(n, None)]
            self._persist()
        return {"status": "unpublished" if gone else "nothing to unpublish"}

    def _persist(self) -> None:
        if self.path is None:
            return
        doc = {"event_logs": [{**d.raw, "is_published": d.name in self.published}
                              for d in self.drafts.values()]}  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str))
        os.replace(tmp, self.path)

    # --- the loader's side
    def observe(self, events: list[Mapping[str, Any]]) -> None:
        with self._lock:
            fresh = self._fresh(events)
            self._pending.extend(fresh)
            self._write(self._entries(list(self.published.values()), fresh))

    def _fresh(self, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The events not buffered yet (remembering the last ``SEEN_IDS`` ids)."""
        seen, out = self._seen, []
        for event in events:
            event_id = event.get("event_id")
            if event_id is not None:
                if event_id in seen:
                    continue
                seen[event_id] = None
                if len(seen) > SEEN_IDS:
                    del seen[next(iter(seen))]
            out.append(event)
        return out

    def committed(self) -> None:
        with self._lock:
            self._pending = []

    def rebuild(self) -> int:
        """After a restart: every published log's rings from the warehouse's recent events."""
        if self.history is None:
            return 0
        logs = list(self.published.values())
        if not logs:
            return 0
        columns = set().union(*(e.columns for e in logs))
        events = self.history(columns, max(e.max_age_seconds for e in logs))
        with self._lock:
            entries = self._entries(logs, self._fresh(events))
            self._write(entries)
        return sum(len(v) for per_log in entries.values() for v in per_log[1].values())

    def _entries(self, logs: list[EventLog], events: Iterable[Mapping[str, Any]]
                 ) -> dict[str, tuple[EventLog, dict[str, list[bytes]]]]:  # fmt: skip
        out: dict[str, tuple[EventLog, dict[str, list[bytes]]]] = {e.name: (e, {}) for e in logs}
        horizon = {e.name: (time.time() - e.max_age_seconds) * 1000 for e in logs}
        for event in events:
            for event_log in logs:
                identifier = event.get(event_log.key)
                if not identifier:
                    continue
                entry = event_log.entry(event)
                if entry is None or entry["t"] < horizon[event_log.name]:
                    continue
                rings = out[event_log.name][1]
                rings.setdefault(event_log.ring_key(str(identifier)), []).append(
                    orjson.dumps(entry, default=str)
                )
        return out

    def _write(self, entries: Mapping[str, tuple[EventLog, dict[str, list[bytes]]]]) -> None:
        for event_log, rings in entries.values():
            if rings:
                self.store.push_lists(rings, event_log.max_events, event_log.max_age_seconds)

    # --- reads
    def recent(self, name: str, identifier: str, now: float | None = None
               ) -> tuple[EventLog, list[dict[str, Any]]]:  # fmt: skip
        """The log's entries for ``identifier``: the last ``max_events`` of those younger
        than ``max_age_seconds``, each event once, oldest first."""
        if name == BUILTIN and name not in self.published:
            self.publish([BUILTIN])  # Persona's own: it buffers from its first read on
        event_log = self.published.get(name)
        if event_log is None:
            hint = " (publish it)" if name in self.drafts else ""
            raise NotFound(f"event log {name!r} is not published{hint}")
        horizon = ((time.time() if now is None else now) - event_log.max_age_seconds) * 1000
        entries: dict[Any, dict[str, Any]] = {}
        for raw in self.store.get_list(event_log.ring_key(identifier)):
            entry = orjson.loads(raw)
            if entry["t"] >= horizon:
                entries.setdefault(entry.get("id") or id(entry), entry)
        ordered = sorted(entries.values(), key=lambda e: (e["t"], str(e.get("id"))))
        return event_log, ordered[-event_log.max_events :]

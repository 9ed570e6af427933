"""Evaluating the rules when their attributes change, and firing them.

Where: the stream engine calls ``on_stream(events, touched)`` after each chunk of accepted
events updated its state (``StreamEngine.listeners``, on the loader's thread, before the
chunk's batch is committed), and the batch sync calls ``on_batch(con, result)`` after a
refresh wrote its changed users (``BatchSync.listeners``), which also reads the new rows of
``derived.segment_changes``.

Cost: rules are indexed by the attribute groups they read. A chunk's touched keys select the
groups that changed; only the rules reading those are evaluated, once per distinct identity
(device, session, user) of the chunk, on the state after the chunk. An event that changes no
group a rule reads costs one dictionary lookup, however many rules there are.

Semantics (Signals'): a rule fires once per target (``target_attribute_keys``, else the keys of
the groups it reads) the first time its criteria hold at an evaluation; with a ``cooldown`` it
may fire again for that target once that long has passed. A rule reading ``segment_changes``
fires per change (each entry or exit is an occurrence). Firing state is the record itself
(``interventions.fired``), so a restart re-arms nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from serving import stream as stream_mod
from serving.batch import batch_key, device_key
from serving.definitions import KEYS, Group
from serving.errors import AlreadyExists, BadRequest, DefinitionError, NotFound, TooManyIds
from serving.interventions.outbox import Delivery, Fire, Outbox, utcnow
from serving.interventions.rules import CHANGES, Leaf, Rule, compile_rule, evaluate, leaves
from serving.interventions.sse import Hub
from serving.interventions.webhooks import Deliverer

if TYPE_CHECKING:
    from serving.service import Registry

log = logging.getLogger("persona.serving.interventions")

# Recent identities remembered (a user's device and session), for rules a refresh triggers.
IDENTITIES = 100_000
PREVIOUS_VALUES = 200_000  # values remembered for the `changed` operator
MAX_TARGETS = 100  # identifiers in one push_intervention (the SDK's limit elsewhere)
_IDX = {"domain_userid": 0, "domain_sessionid": 1, "user_id": 2, "network_userid": 3}


class RuleRegistry:
    """The rules: from the YAML (``source``) and the SDK's registry calls (kept in ``path``,
    JSON, so they survive a restart). Compiled against the attribute registry before anything
    changes; ``listeners`` hear of every change."""

    def __init__(self, attributes: Registry, path: Path | None = None) -> None:
        self.attributes = attributes
        self.path = path
        self.specs: dict[tuple[str, int], dict[str, Any]] = {}
        self.rules: dict[tuple[str, int], Rule] = {}
        self.persisted: list[dict[str, Any]] = []
        self.listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def lookup(self, name: str, version: int | None) -> Group | None:
        try:
            return self.attributes.group(name, version)
        except NotFound:
            return None

    def load(self, specs: Iterable[Any], *, source: str) -> None:
        for spec in specs:
            try:
                self.put(spec, persist=False)
            except (DefinitionError, AlreadyExists, BadRequest) as exc:
                raise DefinitionError(f"{source}: {exc}") from None

    def load_published(self) -> None:
        if self.path is not None and self.path.exists():
            self.load(json.loads(self.path.read_text()), source=str(self.path))

    def put(self, spec: Any, *, create: bool = False, persist: bool = True,
            where: tuple[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
        rule = compile_rule(spec, self.lookup)  # raises before anything changes
        ref = (rule.name, rule.version)
        if where is not None and where != ref:
            raise BadRequest(f"the body defines {rule.ref}, the path {where[0]}_v{where[1]}")
        with self._lock:
            if create and ref in self.specs:
                raise AlreadyExists(f"intervention {rule.ref} exists; PUT to update it")
            stored = {**dict(spec), "version": rule.version,
                      "is_published": spec.get("is_published", True) is not False}  # fmt: skip
            self.specs[ref] = stored
            if stored["is_published"]:
                self.rules[ref] = rule
            else:
                self.rules.pop(ref, None)
            if persist:
                self._persist(ref, stored)
        self._changed()
        return stored

    def delete(self, name: str, version: int) -> None:
        ref = (name, version)
        with self._lock:
            if ref not in self.specs:
                raise NotFound(f"intervention {name}_v{version} does not exist")
            del self.specs[ref]
            self.rules.pop(ref, None)
            self._persist(ref, None)
        self._changed()

    def get(self, name: str, version: int | None = None) -> dict[str, Any]:
        if version is None:
            versions = [v for n, v in self.specs if n == name]
            if not versions:
                raise NotFound(f"intervention {name!r} does not exist")
            version = max(versions)
        try:
            return self.specs[(name, version)]
        except KeyError:
            raise NotFound(f"intervention {name}_v{version} does not exist") from None

    def _persist(self, ref: tuple[str, int], spec: dict[str, Any] | None) -> None:
        kept = [s for s in self.persisted if (s["name"], s.get("version") or 1) != ref]
        self.persisted = kept if spec is None else [*kept, spec]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.persisted, indent=1, default=str))
            os.replace(tmp, self.path)

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()


class Interventions:
    """Rules → fires → record, SSE subscribers and webhook endpoints."""

    def __init__(self, rules: RuleRegistry, engine: Any, store: Any, outbox: Outbox, hub: Hub,
                 deliverer: Deliverer) -> None:  # fmt: skip
        self.rules = rules
        self.engine = engine  # serving.stream.StreamEngine
        self.store = store
        self.outbox = outbox
        self.hub = hub
        self.deliverer = deliverer
        self.index: dict[str, tuple[str, list[Rule]]] = {}  # group → (its key, rules)
        self.fired = outbox.fired_state()
        self.identities: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.previous: OrderedDict[tuple[str, str, str | None], Any] = OrderedDict()
        self._attributes: dict[tuple[str, str], tuple[Group, Any]] = {}  # → (group, attribute)
        self.evaluations = 0
        self.fires = 0
        self.failures = 0
        self._lock = threading.Lock()  # one evaluation at a time
        self.hub_lock = threading.Lock()  # record and publish in sequence order
        self.reindex()
        rules.listeners.append(self.reindex)

    def reindex(self) -> None:
        """Rules by the groups they read (a new dict each time: readers never see half)."""
        index: dict[str, tuple[str, list[Rule]]] = {}
        for rule in self.rules.rules.values():
            for ref in rule.reads:
                rules = index.setdefault(ref.group, (ref.key, []))[1]
                if not rules or rules[-1] is not rule:
                    rules.append(rule)
        self.index = index

    # --- triggers
    def on_stream(self, events: Sequence[Mapping[str, Any]], touched: set[tuple[str, str]]) -> None:
        """After a chunk of events updated the stream state (``touched``: (group, id) keys)."""
        index = self.index
        if not touched or not index:
            return
        groups = {g for g, _ in touched if g in index}
        if not groups:
            return
        identities: dict[tuple[Any, ...], str | None] = {}
        for e in events:
            ident = (e.get("domain_userid"), e.get("domain_sessionid"), e.get("user_id"),
                     e.get("network_userid"))  # fmt: skip
            identities[ident] = e.get("event_id")
        work: list[tuple[tuple[Any, ...], list[Rule], str | None]] = []
        for ident, event_id in identities.items():
            rules: dict[str, Rule] = {}
            for group in groups:
                key, group_rules = index[group]
                identifier = ident[_IDX[key]] if key in _IDX else None
                if identifier is not None and (group, str(identifier)) in touched:
                    for rule in group_rules:
                        rules[rule.ref] = rule
            if rules:
                work.append((ident, list(rules.values()), event_id))
        if work:
            self._evaluate(work, {})

    def on_batch(self, con: Any, result: Any) -> None:
        """After a refresh's batch sync: the users whose profiles or segments changed, and
        the segment entries and exits recorded since the last look."""
        index = self.index
        changed: Mapping[str, list[str]] = getattr(result, "changed", {}) or {}
        work: list[tuple[tuple[Any, ...], list[Rule], str | None]] = []
        for group in ("profiles", "segments", "recommendations"):
            if group in index:
                rules = index[group][1]
                work.extend((self._identity_of(u), rules, None) for u in changed.get(group, []))
        changes = self._segment_changes(con) if CHANGES in index else {}
        for (user, at), (entered, exited) in changes.items():
            context = {"entered": entered, "exited": exited, "occurrence": at}
            self._evaluate([(self._identity_of(user), index[CHANGES][1], None)], context)
        if work:
            self._evaluate(work, {})

    _watermark: Any = None

    def start_watermark(self, con: Any) -> None:
        """Only changes after now trigger (those before were there when the process started)."""
        try:
            self._watermark = con.execute(
                "select max(changed_at) from derived.segment_changes").fetchall()[0][0]  # fmt: skip
        except Exception:  # no such view yet: every change from the first refresh on counts
            self._watermark = None

    def _segment_changes(self, con: Any) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
        try:
            rows = con.execute(
                "select user_id, changed_at, segment, change_type from derived.segment_changes "
                "where changed_at is not null and (? is null or changed_at > ?) "
                "order by changed_at",
                [self._watermark, self._watermark],
            ).fetchall()
        except Exception as exc:
            log.debug("no segment changes to read: %s", exc)
            return {}
        out: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        for user, at, segment, kind in rows:
            entered, exited = out.setdefault((user, at.isoformat()), ([], []))
            (entered if kind == "enter" else exited).append(segment)
            self._watermark = at if self._watermark is None else max(self._watermark, at)
        return out

    def _identity_of(self, user: str) -> tuple[Any, ...]:
        known = self.identities.get(user)
        return known if known is not None else (None, None, user, None)

    # --- evaluation
    def _evaluate(self, work: list[tuple[tuple[Any, ...], list[Rule], str | None]],
                  context: Mapping[str, Any]) -> None:  # fmt: skip
        now = time.time()
        fires: list[tuple[Rule, str, str, tuple[Any, ...], str | None, str | None]] = []
        claimed: set[tuple[str, str, str, str | None]] = set()  # fired by this evaluation
        with self._lock:
            for ident, rules, event_id in work:
                cache: dict[str, Any] = {}
                user = self._stitched(ident, cache)
                if user is not None and ident[0] is not None:
                    self._remember(user, ident)
                for rule in rules:
                    self.evaluations += 1
                    occurrence = context.get("occurrence") if rule.on_changes else None
                    targets = []
                    for key in rule.targets:
                        tid = user if key == "user_id" else ident[_IDX[key]]
                        if tid is None:
                            continue
                        slot = (rule.ref, key, str(tid), occurrence)
                        last = self.fired.get(slot)
                        if slot in claimed or (last is not None and (
                                rule.cooldown is None or now - last < rule.cooldown)):  # fmt: skip
                            continue
                        targets.append((key, str(tid)))
                    track = rule.watches
                    if not targets and not track:
                        continue
                    values = self._reader(rule, ident, user, cache, context, now)
                    if evaluate(rule.criteria, values) and targets:
                        for key, tid in targets:
                            fires.append((rule, key, tid, ident, occurrence, event_id))
                            claimed.add((rule.ref, key, tid, occurrence))
                    if track:
                        self._remember_values(rule, ident, user, cache, context, now)
            if fires:
                self._fire(fires, now)

    def _stitched(self, ident: tuple[Any, ...], cache: dict[str, Any]) -> str | None:
        """The stitched user (the batch groups' key): the device's user if the warehouse
        knows it, else the event's user_id, else the device (its own user)."""
        if "user" not in cache:
            device, _, user, _ = ident
            got = self.store.get(device_key(device)) if device else None
            cache["user"] = orjson.loads(got) if got else (user or device)
        stitched: str | None = cache["user"]
        return stitched

    def _remember(self, user: str, ident: tuple[Any, ...]) -> None:
        self.identities[user] = ident
        self.identities.move_to_end(user)
        if len(self.identities) > IDENTITIES:
            self.identities.popitem(last=False)

    def _value(self, leaf_group: str, name: str, key: str, kind: str, ident: tuple[Any, ...],
               user: str | None, cache: dict[str, Any], context: Mapping[str, Any],
               now: float) -> Any:  # fmt: skip
        if kind == "change":
            return context.get(name) or None
        if kind == "batch":
            if user is None:
                return None
            slot = f"b:{leaf_group}"
            if slot not in cache:
                raw = self.store.get(batch_key(leaf_group, user))
                cache[slot] = orjson.loads(raw) if raw else {}
            return cache[slot].get(name)
        identifier = ident[_IDX[key]]
        group = self.engine.groups.get(leaf_group)
        if identifier is None or group is None:
            return None
        cached = self._attributes.get((leaf_group, name))
        if cached is None or cached[0] is not group:  # first use, or the group was republished
            cached = self._attributes[(leaf_group, name)] = (group, _attribute(group, name))
        attribute = cached[1]
        state = self.engine.state.get((leaf_group, str(identifier)))
        if state is None or (group.ttl and now - state.get("t", now) > group.ttl):
            return stream_mod.default(attribute)
        return stream_mod.value(attribute, state["a"].get(name), now)

    def _reader(self, rule: Rule, ident: tuple[Any, ...], user: str | None,
                cache: dict[str, Any], context: Mapping[str, Any],
                now: float) -> Callable[[Leaf], tuple[Any, Any]]:  # fmt: skip
        def read(leaf: Leaf) -> tuple[Any, Any]:
            r = leaf.ref
            got = self._value(r.group, r.name, r.key, r.kind, ident, user, cache, context, now)
            previous = None
            if leaf.operator == "changed":
                previous = self.previous.get((rule.ref, r.qualified, _target(ident, user, r.key)))
            return got, previous

        return read

    def _remember_values(self, rule: Rule, ident: tuple[Any, ...], user: str | None,
                         cache: dict[str, Any], context: Mapping[str, Any],
                         now: float) -> None:  # fmt: skip
        for leaf in leaves(rule):
            if leaf.operator != "changed":
                continue
            r = leaf.ref
            got = self._value(r.group, r.name, r.key, r.kind, ident, user, cache, context, now)
            slot = (rule.ref, r.qualified, _target(ident, user, r.key))
            self.previous[slot] = got
            self.previous.move_to_end(slot)
            if len(self.previous) > PREVIOUS_VALUES:
                self.previous.popitem(last=False)

    def _payload(self, rule: Rule, ident: tuple[Any, ...], user: str | None,
                 now: float) -> dict[str, str]:  # fmt: skip
        out: dict[str, str] = {}
        for group in rule.payload:
            if group.is_stream:
                identifier = _target(ident, user, group.key)
                state = self.engine.state.get((group.full_name, identifier)) if identifier else None
                values = stream_mod.group_values(group, state, now)
            else:
                raw = self.store.get(batch_key(group.name, user)) if user else None
                row = orjson.loads(raw) if raw else {}
                values = {f: row.get(f) for f, _ in group.fields}
            for name, v in values.items():
                out[name] = v if isinstance(v, str) else orjson.dumps(v).decode()
        return out

    # --- firing
    def _fire(self, fires: list[tuple[Rule, str, str, tuple[Any, ...], str | None, str | None]],
              now: float) -> None:  # fmt: skip
        at = datetime.fromtimestamp(now, UTC)
        records: list[Fire] = []
        payloads: dict[tuple[str, tuple[Any, ...]], dict[str, str]] = {}
        for rule, key, tid, ident, occurrence, event_id in fires:
            slot = (rule.ref, ident)
            if slot not in payloads:
                payloads[slot] = self._payload(rule, ident, self._stitched(ident, {}), now)
            records.append(Fire(0, str(uuid.uuid4()), rule.name, rule.version, "rule", key, tid,
                                payloads[slot], at, occurrence, event_id))  # fmt: skip
        webhooks = {f.intervention_id: r.webhooks for f, (r, *_) in zip(records, fires,
                                                                         strict=True)}  # fmt: skip
        if self.emit(records, webhooks) is not None:
            for rule, key, tid, _, occurrence, _ in fires:
                self.fired[(rule.ref, key, tid, occurrence)] = now

    def emit(self, records: list[Fire],
             webhooks: Mapping[str, tuple[str, ...] | None] | None = None
             ) -> int | None:  # fmt: skip
        """Record ``records`` (with their deliveries) durably, then hand them to the SSE
        subscribers and the webhook queues. Returns how many subscriptions got one, or None
        if the record failed (nothing was sent: the next evaluation tries again)."""
        deliveries: list[Delivery] = []
        with self.hub_lock:
            for f in records:
                f.seq = self.outbox.next_seq()
                f.sse_subscribers = self.hub.listeners(f.target_key, f.target_id)
                names = (webhooks or {}).get(f.intervention_id)
                for name, endpoint in self.deliverer.endpoints.items():
                    if names is not None and name not in names:
                        continue
                    delivery_id = str(uuid.uuid4())
                    deliveries.append(Delivery(delivery_id, f.intervention_id, f.seq, name,
                                               endpoint.url, f.body(delivery_id)))  # fmt: skip
            try:
                self.outbox.record(records, deliveries)
            except Exception:
                self.failures += 1
                self.outbox.last_seq -= len(records)
                log.exception("interventions: %d could not be recorded; not sent", len(records))
                return None
            handed = self.hub.publish(records)
        self.deliverer.enqueue(deliveries)
        shown = ", ".join(f"{f.name} for {f.target_key} {f.target_id}" for f in records[:3])
        more = f" and {len(records) - 3} more" if len(records) > 3 else ""
        log.info("fired %s%s", shown, more)
        self.fires += len(records)
        return handed

    # --- the SDK's push_intervention
    def push(self, instance: Any, targets: Mapping[str, list[str]]) -> dict[str, str]:
        if not isinstance(instance, Mapping):
            raise BadRequest("the body must be an InterventionInstance object")
        name, version = instance.get("name"), instance.get("version")
        if not isinstance(name, str) or not name:
            raise BadRequest("an intervention needs a name")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadRequest("an intervention needs an integer version")
        attributes = instance.get("attributes") or {}
        if not isinstance(attributes, Mapping) or not all(
            isinstance(v, str) for v in attributes.values()
        ):
            raise BadRequest("attributes must be an object of strings")
        pairs = [(k, i) for k, ids in targets.items() for i in ids]
        if not pairs:
            raise BadRequest("name at least one target: ?domain_userid=ID (or another key)")
        if len(pairs) > MAX_TARGETS:
            raise TooManyIds(f"{len(pairs)} targets in one request; the limit is {MAX_TARGETS}")
        given = instance.get("intervention_id")
        at = utcnow()
        records = [
            Fire(0, given if isinstance(given, str) and given and len(pairs) == 1
                 else str(uuid.uuid4()), name, version, "push", k, i, dict(attributes), at)
            for k, i in pairs
        ]  # fmt: skip
        handed = self.emit(records)
        if handed is None:
            return {"status": "failure"}
        return {"status": "success" if handed else "undelivered"}

    def status(self) -> dict[str, Any]:
        return {"interventions_fired": self.fires, "intervention_evaluations": self.evaluations,
                "intervention_record_failures": self.failures,
                "interventions_published": len(self.rules.rules),
                **self.deliverer.status()}  # fmt: skip


def _attribute(group: Group, name: str) -> Any:
    for a in group.attributes:
        if a.name == name:
            return a
    raise KeyError(name)


def _target(ident: tuple[Any, ...], user: str | None, key: str) -> str | None:
    if key == "user_id":
        return user
    got = ident[_IDX[key]] if key in _IDX else None
    return None if got is None else str(got)


def parse_targets(query: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``?domain_userid=A&domain_userid=B&domain_sessionid=C`` → {key: [ids]}."""
    out: dict[str, list[str]] = {}
    for key, value in query:
        if key not in KEYS:
            raise NotFound(f"attribute key {key!r} does not exist (one of {', '.join(KEYS)})")
        if not value:
            raise BadRequest(f"{key} needs an identifier")
        out.setdefault(key, []).append(value)
    return out

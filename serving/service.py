"""What the API does, in plain Python: the registry of attribute groups and services, reading
attributes (Signals' ``get-online-attributes``) and ``decide``. Requests and answers are
JSON-shaped dicts; errors are ``serving.errors``. The HTTP layer (``serving.http``) only moves
bytes and maps errors to statuses, so tests can call this directly.

Every read is a handful of online-store keys fetched in one round trip; nothing here touches
the warehouse.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from serving import definitions
from serving.batch import (
    BATCH_META_KEY,
    RULES_KEY,
    affinity_key,
    batch_key,
    builtin_groups,
    device_key,
    purchase_key,
)
from serving.context import Pseudonyms, load_salt
from serving.definitions import Group, Service
from serving.errors import (
    AlreadyExists,
    BadRequest,
    DefinitionError,
    Forbidden,
    NotFound,
    ReadOnly,
    TooManyIds,
)
from serving.event_logs import EventLogs
from serving.stores.base import OnlineStore
from serving.stream import StreamEngine, group_values, stream_key

log = logging.getLogger("persona.serving")

# Signals' SDK allows at most this many identifiers in one request (AttributeKeyIdentifiers).
MAX_IDENTIFIERS = 100
# users' affinity scores kept for live scoring, in neighbours scored: ~170 bytes each
KEPT_BUDGET = 500_000
# The stream groups decide reads: the session's products so far, the device's latest session.
SESSION_GROUP = "persona_session"
DEVICE_GROUP = "persona_device"
_ECOM = {"vendor": "com.snowplowanalytics.snowplow.ecommerce", "major_version": 1}
_PRODUCT_VIEW = {
    "all": [{"property": {"type": "event", "name": "snowplow_ecommerce_action", "path": "$.type",
                          **_ECOM},
             "operator": "in", "value": ["product_view", "add_to_cart"]}],
}  # fmt: skip
_PRODUCT_ID = {"type": "entity", "name": "product", "path": "$.id", "index": 0, **_ECOM}
# The collector's id for a tracker that asked not to be identified (SP-Anonymous): no one's.
ANONYMOUS_NUID = "00000000-0000-0000-0000-000000000000"
_NUID = {"type": "atomic", "name": "network_userid"}
_IDENTIFIED = {
    "all": [{"property": _NUID, "operator": "is not null", "value": None},
            {"property": _NUID, "operator": "!=", "value": ANONYMOUS_NUID}],
}  # fmt: skip
BUILTIN_STREAM = [
    {
        "name": SESSION_GROUP, "version": 1, "owner": "persona@localhost",
        "description": "What decide reads of the session so far.",
        "attribute_key": {"name": "domain_sessionid"},
        "attributes": [
            {"name": "products", "type": "string_list", "aggregation": "unique_list",
             "events": [], "property": _PRODUCT_ID, "criteria": _PRODUCT_VIEW},
            {"name": "events", "type": "int64", "aggregation": "counter", "events": []},
        ],
    },
    {
        "name": DEVICE_GROUP, "version": 1, "owner": "persona@localhost",
        "description": "What decide reads of a device: its latest session, and its owner: the "
        "network_userid (the collector's sp cookie) it first arrived with.",
        "attribute_key": {"name": "domain_userid"},
        "attributes": [
            {"name": "last_session", "type": "string", "aggregation": "last", "events": [],
             "property": {"type": "atomic", "name": "domain_sessionid"}},
            {"name": "owner", "type": "string", "aggregation": "first", "events": [],
             "property": _NUID, "criteria": _IDENTIFIED},
        ],
    },
]  # fmt: skip


def _now_iso(ts: float | None = None) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).isoformat(
        timespec="milliseconds"
    )


class Registry:
    """The published attribute groups and services. Built-in groups (Persona's batch groups
    and the two stream groups decide reads) cannot be replaced. Groups and services published
    through the API are kept in ``path`` (JSON), so that they survive a restart."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.groups: dict[tuple[str, int], Group] = {}
        self.services: dict[str, Service] = {}
        self.builtin: set[str] = set()
        self.published: dict[str, list[dict[str, Any]]] = {"attribute_groups": [], "services": []}
        self.listeners: list[Callable[[Group | None, Group | None], None]] = []
        self.changed: list[Callable[[], None]] = []  # after any publish (serving/replica.py)
        self.read_only = False  # an API replica's: the live process publishes
        self._lock = threading.Lock()

    def add_builtin(self, groups: Iterable[Group]) -> None:
        for group in groups:
            self.groups[(group.name, group.version)] = group
            self.builtin.add(group.name)

    def load(self, groups: Iterable[Any], services: Iterable[Any], *, source: str) -> None:
        """Definitions from a file: all valid, or a ``DefinitionError`` naming the bad one."""
        for spec in groups:
            try:
                self.put_group(spec, persist=False)
            except DefinitionError as exc:
                raise DefinitionError(f"{source}: {exc}") from None
        for spec in services:
            try:
                self.put_service(spec, persist=False)
            except DefinitionError as exc:
                raise DefinitionError(f"{source}: {exc}") from None

    def load_published(self) -> None:
        if self.path is not None and self.path.exists():
            doc = json.loads(self.path.read_text())
            self.load(doc.get("attribute_groups", []), doc.get("services", []),
                      source=str(self.path))  # fmt: skip

    def group(self, name: str, version: int | None = None) -> Group:
        if version is None:
            versions = [v for n, v in self.groups if n == name]
            if not versions:
                raise NotFound(f"attribute group {name!r} is not published")
            version = max(versions)
        try:
            return self.groups[(name, version)]
        except KeyError:
            raise NotFound(f"attribute group {name}_v{version} is not published") from None

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise NotFound(f"service {name!r} is not published") from None

    def put_group(self, spec: Any, *, create: bool = False, persist: bool = True,
                  where: tuple[str, int] | None = None) -> Group:  # fmt: skip
        self._writable()
        group = definitions.compile_group(spec)
        ref = (group.name, group.version)
        if where is not None and where != ref:
            raise BadRequest(
                f"the body defines {ref[0]}_v{ref[1]}, the path {where[0]}_v{where[1]}"
            )
        if group.name in self.builtin:
            raise DefinitionError(
                f"attribute group {group.name!r} is built in; choose another name"
            )
        with self._lock:
            old = self.groups.get(ref)
            if create and old is not None:
                raise AlreadyExists(f"attribute group {group.full_name} exists; PUT to update it")
            unpublish = spec.get("is_published") is False
            if unpublish:
                self.groups.pop(ref, None)
            else:
                self.groups[ref] = group
            if persist:
                self._persist(
                    "attribute_groups", spec, lambda s: (s["name"], s.get("version") or 1) == ref
                )
        for listener in self.listeners:
            listener(old, None if unpublish else group)
        self._changed(persist)
        return group

    def put_service(self, spec: Any, *, create: bool = False, persist: bool = True,
                    where: str | None = None) -> Service:  # fmt: skip
        self._writable()
        service = definitions.compile_service(spec, self.groups)
        if where is not None and where != service.name:
            raise BadRequest(f"the body defines service {service.name!r}, the path {where!r}")
        with self._lock:
            if create and service.name in self.services:
                raise AlreadyExists(f"service {service.name!r} exists; PUT to update it")
            if spec.get("is_published") is False:
                self.services.pop(service.name, None)
            else:
                self.services[service.name] = service
            if persist:
                self._persist("services", spec, lambda s: s["name"] == service.name)
        self._changed(persist)
        return service

    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnly(
                "this is an API replica (persona serve --replica): publish through the live "
                "process, whose definitions every replica loads"
            )

    def _changed(self, published: bool) -> None:
        if published:  # a file's definitions at start are shared once, by the caller
            for callback in self.changed:
                callback()

    def _persist(self, kind: str, spec: Any, same: Callable[[dict[str, Any]], bool]) -> None:
        kept = [s for s in self.published[kind] if not same(s)]
        self.published[kind] = [*kept, dict(spec)]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.published, indent=1, default=str))
            os.replace(tmp, self.path)

    def stream_groups(self) -> list[Group]:
        return [g for g in self.groups.values() if g.is_stream]


def group_response(group: Group) -> dict[str, Any]:
    """A group as Signals' registry answers (``AttributeGroupResponse``)."""
    raw = {k: v for k, v in group.raw.items() if v is not None}
    key = raw.get("attribute_key")
    if not isinstance(key, dict):
        key = {}
    return {
        **raw,
        "version": group.version,
        "is_published": True,
        "attribute_key": {"name": group.key_name, "key": key.get("key"), "blobl_path": None,
                          "description": key.get("description")},
        "attribute_key_or_name": group.key,
        "full_name": group.full_name,
        "feast_name": group.full_name,
        "stream_source_name": None if not group.is_stream else "persona_collector",
    }  # fmt: skip


class Api:
    """The API's operations over a registry, a stream engine and an online store."""

    def __init__(self, registry: Registry, store: OnlineStore,
                 stream: StreamEngine | None = None, *,
                 new_visitor_segment: str = "new_visitors") -> None:  # fmt: skip
        self.registry = registry
        self.store = store
        self.stream = stream
        self.new_visitor_segment = new_visitor_segment
        self.started = time.time()
        self.refresh_status: Callable[[], dict[str, Any]] = dict
        # agentic context (serving.event_logs, serving.context); the live process sets both
        self.event_logs = EventLogs(store)
        self.pseudonyms = Pseudonyms(load_salt(None))
        # the served rule set as stored, parsed, and as the udfs core's RuleSet
        self._rules: tuple[bytes, dict[str, Any], Any] | None = None
        # user -> (their affinities as stored, the rule set, those scored under it: udfs.core's
        # AffinityScores): most of a live score's cost, unchanged until a sync or a retrain
        # changes either; bounded by KEPT_BUDGET in all, the least recently used go first
        self._kept: dict[str, tuple[bytes, Any, Any]] = {}
        self._kept_size = 0
        self._kept_lock = threading.Lock()

    # --- registry (the SDK's publish, get_attribute_group)
    def publish_group(self, spec: Any, where: tuple[str, int] | None = None) -> dict[str, Any]:
        if not isinstance(spec, Mapping):
            raise BadRequest("an attribute group must be a JSON object")
        self.registry.put_group(spec, create=where is None, where=where)
        return dict(spec)

    def publish_service(self, spec: Any, where: str | None = None) -> dict[str, Any]:
        if not isinstance(spec, Mapping):
            raise BadRequest("a service must be a JSON object")
        self.registry.put_service(spec, create=where is None, where=where)
        return dict(spec)

    def get_group(self, name: str, version: int | None = None) -> dict[str, Any]:
        return group_response(self.registry.group(name, version))

    def get_service(self, name: str) -> dict[str, Any]:
        service = self.registry.service(name)
        return {**service.raw, "is_published": True}

    # --- attributes (the SDK's get_service_attributes, get_group_attributes)
    def online_attributes(self, request: Any) -> dict[str, list[Any]]:
        """Signals' ``get-online-attributes``: ``{"attribute_keys": {key: [ids]}, "service":
        name}`` or ``..."attributes": ["group_v1:attr", ...]``; answers ``{attribute: [value
        per id]}`` and each key given with its ids."""
        if not isinstance(request, Mapping):
            raise BadRequest("the body must be a JSON object")
        ids = _identifiers(request.get("attribute_keys"))
        full = bool(request.get("full_attribute_names"))
        if request.get("service") is not None:
            service = self.registry.service(str(request["service"]))
            wanted: list[tuple[Group, list[str] | None]] = [
                (self.registry.group(n, v), None) for n, v in service.groups
            ]
        elif request.get("attributes") is not None:
            names = request["attributes"]
            if not isinstance(names, list) or not names:
                raise BadRequest("attributes must be a non-empty list of GROUP_vN:ATTRIBUTE")
            by_group: dict[tuple[str, int], list[str]] = {}
            for qualified in names:
                name, version, attribute = definitions.parse_qualified(qualified)
                group = self.registry.group(name, version)
                if attribute not in group.names():
                    raise NotFound(f"attribute {attribute!r} is not in {group.full_name}")
                by_group.setdefault((name, version), []).append(attribute)
            wanted = [(self.registry.group(n, v), a) for (n, v), a in by_group.items()]
        else:
            raise BadRequest("give a service or a list of attributes")
        plan: list[tuple[Group, list[str] | None, list[str], list[str]]] = []
        keys: list[str] = []
        for group, attributes in wanted:
            group_ids = self._ids_for(group, ids)
            store_keys = [self._store_key(group, i) for i in group_ids]
            plan.append((group, attributes, group_ids, store_keys))
            keys.extend(store_keys)
        if any(not group.is_stream for group, *_ in plan):
            keys.append(BATCH_META_KEY)
        values = dict(zip(keys, self.store.get_many(keys), strict=True)) if keys else {}
        meta = values.get(BATCH_META_KEY)
        synced = orjson.loads(meta)["as_of"] if meta else None
        now = time.time()
        out: dict[str, list[Any]] = {k: list(v) for k, v in ids.items()}
        for group, attributes, group_ids, store_keys in plan:
            if not group_ids:
                continue
            rows = [self._group_values(group, values.get(k), now) for k in store_keys]
            if not group.is_stream:  # as_of: the last sync, not the row's last change
                for row in rows:
                    if "as_of" in row and row["as_of"] is not None:
                        row["as_of"] = synced or row["as_of"]
            for attribute in attributes or group.names():
                name = f"{group.full_name}:{attribute}" if full else attribute
                out[name] = [row.get(attribute) for row in rows]
        return out

    def _ids_for(self, group: Group, ids: Mapping[str, list[str]]) -> list[str]:
        if group.key in ids:
            return ids[group.key]
        if group.key == "user_id" and "domain_userid" in ids:
            return [self.user_of(d) for d in ids["domain_userid"]]
        return []

    def user_of(self, domain_userid: str) -> str:
        """The stitched user of a device: the user it logged in as, else the device itself."""
        got = self.store.get(device_key(domain_userid))
        return orjson.loads(got) if got else domain_userid

    @staticmethod
    def _store_key(group: Group, identifier: str) -> str:
        if group.is_stream:
            return stream_key(group, identifier)
        return batch_key(group.name, identifier)

    @staticmethod
    def _group_values(group: Group, raw: bytes | None, now: float) -> dict[str, Any]:
        state = orjson.loads(raw) if raw else None
        if group.is_stream:
            return group_values(group, state, now)
        return {f: (state or {}).get(f) for f, _ in group.fields}

    # --- decide
    def decide(self, request: Any, *, browser: str | None = None) -> dict[str, Any]:
        """Profile fields, segments and recommendations scored live for one visitor; see
        ``DECIDE_SCHEMA`` in ``serving.http`` for the shapes.

        ``browser``: the caller is a browser without the server token, identified by the
        collector's ``sp`` cookie (its network_userid). It may ask only about its own device:
        the ``domain_userid`` whose first event came with that cookie (``owner`` in the
        built-in device group), that device's latest session and its stitched user; anything
        else is ``Forbidden``."""
        if not isinstance(request, Mapping):
            raise BadRequest("the body must be a JSON object")
        device, user, session = (_opt_str(request, k) for k in
                                 ("domain_userid", "user_id", "domain_sessionid"))  # fmt: skip
        if not (device or user or session):
            raise BadRequest("give a domain_userid, user_id or domain_sessionid")
        fields = request.get("fields") or []
        on_screen = request.get("items") or []
        k = request.get("k", 10)
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise BadRequest("fields must be a list of profile column names")
        if not isinstance(on_screen, list) or not all(isinstance(i, str) for i in on_screen):
            raise BadRequest("items must be a list of item ids")
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= 100:
            raise BadRequest("k must be an integer from 0 to 100")
        profiles = self.registry.group("profiles", 1)
        known = {f for f, _ in profiles.fields}
        for f in fields:
            if f not in known:
                raise NotFound(f"profile field {f!r} does not exist")
        session_group = self.registry.group(SESSION_GROUP, 1)
        device_group = self.registry.group(DEVICE_GROUP, 1)
        of_device: dict[str, Any] = {}
        if device:
            state = self.store.get(stream_key(device_group, device))
            of_device = group_values(device_group, orjson.loads(state) if state else None,
                                     time.time())  # fmt: skip
        if browser is not None:
            self._own_device(browser, device, user, session, of_device)
        if user is None:
            user = self.user_of(device) if device else None
        if session is None and device:
            session = of_device["last_session"]
        keys = [
            batch_key("profiles", user or ""), batch_key("segments", user or ""),
            batch_key("recommendations", user or ""), affinity_key(user or ""),
            purchase_key(user or ""), stream_key(session_group, session or ""), RULES_KEY,
            BATCH_META_KEY,
        ]  # fmt: skip
        *raw, raw_rules, raw_meta = self.store.get_many(keys)
        got = [orjson.loads(v) if v else None for v in raw]
        profile, segments, precomputed, affinities, bought, session_state = got
        # a batch key reflects the last sync, which wrote it or found it unchanged
        synced = orjson.loads(raw_meta)["as_of"] if raw_meta else None
        rules, rule_set = self._rule_set(raw_rules)
        now = time.time()
        session_items = group_values(session_group, session_state, now)["products"]
        answer: dict[str, Any] = {
            "user_id": user, "domain_sessionid": session,
            "profile": {"fields": {f: (profile or {}).get(f) for f in fields},
                        "as_of": synced if profile else None, "known": profile is not None},
            "segments": {"segments": (segments or {}).get("segments", []),
                         "as_of": synced if segments else None},
            "session": {"items": session_items,
                        "as_of": _now_iso(session_state["t"]) if session_state else None},
        }  # fmt: skip
        answer["recommendations"] = self._recommend(
            rules, rule_set, answer["segments"]["segments"], session_items + on_screen,
            self._affinity_scores(user, raw[3], affinities, rule_set),
            _purchases(bought, now), precomputed, k,
        )  # fmt: skip
        return answer

    def _own_device(self, nuid: str, device: str | None, user: str | None,
                    session: str | None, of_device: Mapping[str, Any]) -> None:  # fmt: skip
        """A browser's call: refused unless it is about the device its cookie owns."""
        if not nuid or nuid == ANONYMOUS_NUID:
            raise Forbidden("an anonymous browser (SP-Anonymous) has no device to read")
        if device is None:
            raise Forbidden("a browser names its own domain_userid (the tracker's)")
        owner = of_device.get("owner")
        # constant time: the owner's cookie is the secret a timing oracle would give away
        if not isinstance(owner, str) or not hmac.compare_digest(owner.encode(), nuid.encode()):
            raise Forbidden(f"domain_userid {device} is not this browser's device")
        if session is not None and session != of_device.get("last_session"):
            raise Forbidden(f"domain_sessionid {session} is not this device's latest session")
        if user is not None and user != self.user_of(device):
            raise Forbidden(f"user_id {user} is not this device's user")

    def _rule_set(self, raw: bytes | None) -> tuple[dict[str, Any] | None, Any]:
        """The served rule set (as stored, and as the udfs core's ``RuleSet``), parsed once per
        publication rather than per call: it is the biggest value in the store (every item's
        neighbours: 0.5 MB for the demo's 300 products), and parsing it on each ``decide``
        cost far more than the rest of the call (measured: bench/serving.py)."""
        from udfs.core import DEFAULT_PARAMS, RuleSet

        if raw is None:
            return None, None
        cached = self._rules
        # the in-process store hands back the object it holds: identity is the cheap test
        if cached is None or (cached[0] is not raw and cached[0] != raw):
            rules = orjson.loads(raw)
            neighbours = {k: {n: float(s) for n, s in v} for k, v in rules["neighbours"].items()}
            # a store synced before buy-again has no repurchase nor params: the defaults
            repurchase = {i: (float(r), float(d or 0.0))
                          for i, (r, d) in rules.get("repurchase", {}).items()}  # fmt: skip
            params = DEFAULT_PARAMS | {k: float(v) for k, v in rules.get("params", {}).items()}
            scored = RuleSet(rules["version"], neighbours, (), repurchase, params)
            cached = self._rules = (raw, rules, scored)
            with self._kept_lock:  # computed under the previous rule set
                self._kept.clear()
                self._kept_size = 0
        return cached[1], cached[2]

    def _affinity_scores(self, user: str | None, raw: bytes | None,
                         affinities: Mapping[str, float] | None, rules: Any) -> Any:  # fmt: skip
        """The user's affinities scored under the served rule set (udfs.core's
        ``AffinityScores``), kept while their stored affinities stay the same bytes (a sync
        rewrites a key only when its value changed) under the same parsed rule set."""
        from udfs.core import score_affinities

        if rules is None:
            return None
        if user is None or raw is None:
            return score_affinities(rules, affinities)
        with self._kept_lock:
            kept = self._kept.pop(user, None)
            if kept is not None and kept[1] is rules and (kept[0] is raw or kept[0] == raw):
                self._kept[user] = kept  # the most recently used last
                return kept[2]
            if kept is not None:
                self._kept_size -= len(kept[2].sums)
        scored = score_affinities(rules, affinities)
        with self._kept_lock:
            self._kept[user] = (raw, rules, scored)
            self._kept_size += len(scored.sums)
            while self._kept_size > KEPT_BUDGET and len(self._kept) > 1:
                oldest = next(iter(self._kept))
                self._kept_size -= len(self._kept.pop(oldest)[2].sums)
        return scored

    def _recommend(self, rules: Mapping[str, Any] | None, base: Any, segments: list[str],
                   context: list[str], kept: Any, purchases: Mapping[str, Any],
                   precomputed: Mapping[str, Any] | None, k: int) -> dict[str, Any]:  # fmt: skip
        """Scored live by the udfs core (the warehouse UDF's code) with the session's items,
        the user's affinities (``kept``: already scored) and what they bought (buy-again); the
        fallback is the popular items of the user's best-matching segment: the smallest
        segment they are in that has popular items, else the new-visitor segment, else
        everyone's ('*')."""
        from udfs.core import recommend_explained

        if rules is None:
            return {"items": [], "rule_set_version": None, "as_of": None, "strategy": "none"}
        popular = rules.get("popular", {})
        sizes = rules.get("segment_sizes", {})
        candidates = sorted((s for s in segments if popular.get(s)),
                            key=lambda s: (sizes.get(s, 0), s))  # fmt: skip
        fallback = self.new_visitor_segment if popular.get(self.new_visitor_segment) else "*"
        segment = candidates[0] if candidates else fallback
        scored = dataclasses.replace(base, popular=tuple(popular.get(segment, ())), segment=segment)
        top = recommend_explained(scored, context, None, k, purchases=purchases, kept=kept)
        live = any(s.score > 0 for s in top)
        return {
            "items": [{"product_id": s.item, "score": s.score, "reason": s.reason,
                       "reason_detail": s.detail} for s in top],
            "rule_set_version": rules["version"], "as_of": rules.get("as_of"),
            "strategy": "live" if live else f"popular:{segment}",
            "precomputed": (precomputed or {}).get("recommendations", [])[:k],
        }  # fmt: skip

    # --- health
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - self.started, 3),
                **self.refresh_status()}  # fmt: skip


def _purchases(
    synced: Mapping[str, list[float]] | None, now: float
) -> dict[str, tuple[int, float, float]]:
    """The synced purchases ({item: [times, first, latest] in epoch seconds}) as the udfs
    core's ``Purchase``: days since the first and the latest purchase are counted to now, so an
    item becomes due live as time passes, not only at the next retrain."""
    return {
        item: (int(times), max(now - first, 0.0) / 86400.0, max(now - latest, 0.0) / 86400.0)
        for item, (times, first, latest) in (synced or {}).items()
    }


def _identifiers(spec: Any) -> dict[str, list[str]]:
    if not isinstance(spec, Mapping) or not spec:
        raise BadRequest("attribute_keys must be an object of {attribute key: [identifiers]}")
    out: dict[str, list[str]] = {}
    total = 0
    for key, ids in spec.items():
        if key not in definitions.KEYS:
            raise NotFound(
                f"attribute key {key!r} does not exist (one of {', '.join(definitions.KEYS)})"
            )
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest(f"attribute_keys.{key} must be a list of strings")
        total += len(ids)
        out[key] = ids
    if total > MAX_IDENTIFIERS:
        raise TooManyIds(f"{total} identifiers in one request; the limit is {MAX_IDENTIFIERS}")
    return out


def _opt_str(request: Mapping[str, Any], key: str) -> str | None:
    value = request.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise BadRequest(f"{key} must be a non-empty string")
    return value


def builtin_stream_groups() -> list[Group]:
    return [definitions.compile_group(spec) for spec in BUILTIN_STREAM]


def new_registry(path: Path | None = None) -> Registry:
    registry = Registry(path)
    registry.add_builtin(builtin_groups())
    registry.add_builtin(builtin_stream_groups())
    return registry

"""Attribute groups and services as data, in Snowplow Signals' JSON shape.

The same shape comes from ``serving/attributes.yml`` (a list under ``attribute_groups`` and one
under ``services``) and from the Signals SDK's ``publish``: a definition is validated here into
a compiled form, and one that cannot be served raises ``DefinitionError`` naming the group (and
the attribute) and why. Nothing is half-registered: ``Registry.publish`` validates first.

Supported, of the Signals model:

- stream attribute groups keyed by ``domain_userid``, ``domain_sessionid``, ``user_id`` or
  ``network_userid``, with attributes aggregating ``counter``, ``sum``, ``min``, ``max``,
  ``mean``, ``first``, ``last``, ``unique_list`` over the events named in ``events`` (any
  event when empty) that meet ``criteria`` (``all`` and/or ``any`` of ``=``, ``!=``, ``<``,
  ``>``, ``<=``, ``>=``, ``like``, ``in``, ``is null``, ``is not null``), over ``period`` (or
  the whole history kept), of an atomic, event (unstruct) or entity (context) property;
- batch attribute groups are Persona's own (``profiles``, ``segments``, ``recommendations``,
  see ``serving.batch``): they come from the warehouse's serving tables;
- services: named lists of attribute group versions.

An event's ``version`` in ``events`` matches on its major part: the warehouse keeps one column
per schema major version, and minor versions are compatible by Iglu's rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from loader.contract import snake
from serving.errors import DefinitionError

KEYS = ("domain_userid", "domain_sessionid", "user_id", "network_userid")
# An app's events carry their session and device in the client_session entity (the mobile
# trackers set no domain_sessionid): the keys read it first, as the models do (derived.events),
# so an app session or install is keyed by its client_session sessionId or userId.
CLIENT_SESSION = "contexts_com_snowplowanalytics_snowplow_client_session_1"
CLIENT_SESSION_KEYS = {"domain_sessionid": "sessionId", "domain_userid": "userId"}
# the SDK's deprecated predefined keys: name "user"/"session", the column in "key"
AGGREGATIONS = ("counter", "sum", "min", "max", "mean", "first", "last", "unique_list")
NUMERIC = ("sum", "min", "max", "mean")
OPERATORS = ("=", "!=", "<", ">", "<=", ">=", "like", "in", "is null", "is not null")
TYPES = (
    "bytes", "string", "int32", "int64", "double", "float", "bool", "unix_timestamp",
    "timestamp", "bytes_list", "string_list", "int32_list", "int64_list", "double_list",
    "float_list", "bool_list", "unix_timestamp_list", "dict",
)  # fmt: skip
NAME_RE = re.compile(r"[A-Za-z0-9_]{1,128}")
QUALIFIED_RE = re.compile(r"([A-Za-z0-9_]+)_v([0-9]+):([A-Za-z0-9_]+)")
# A unique_list keeps at most this many values (the latest win): a bound per key and attribute.
MAX_UNIQUE = 100
_PATH_PART = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")
# What the atomic events table has: a property naming anything else cannot be served.
_ATOMIC: frozenset[str] | None = None


def _atomic_names() -> frozenset[str]:
    global _ATOMIC
    if _ATOMIC is None:
        from loader.contract import ATOMIC_FIELDS

        _ATOMIC = frozenset(f.name for f in ATOMIC_FIELDS)
    return _ATOMIC


@dataclass(frozen=True)
class Property:
    """Where a value comes from on an event (an ``Event`` dict: entity columns either parsed,
    or as JSON text, as a ``Chunk``'s Arrow table holds them)."""

    column: str
    path: tuple[str | int, ...] = ()
    index: int | None = None  # contexts: which entity of the list

    def get(self, event: Mapping[str, Any]) -> Any:
        value = event.get(self.column)
        if value is None or (self.index is None and not self.path):
            return value
        if isinstance(value, str | bytes):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return None
        if self.index is not None:
            if not isinstance(value, list) or len(value) <= self.index:
                return None
            value = value[self.index]
        for part in self.path:
            if isinstance(part, int):
                if not isinstance(value, list) or len(value) <= part:
                    return None
                value = value[part]
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return None
            if value is None:
                return None
        return value


@dataclass(frozen=True)
class Criterion:
    prop: Property
    operator: str
    value: Any

    def matches(self, event: Mapping[str, Any]) -> bool:
        got = self.prop.get(event)
        op, want = self.operator, self.value
        if op == "is null":
            return got is None
        if op == "is not null":
            return got is not None
        if got is None:
            return False
        try:
            if op == "=":
                return got == want or str(got) == str(want)
            if op == "!=":
                return not (got == want or str(got) == str(want))
            if op == "in":
                return got in want or str(got) in {str(w) for w in want}
            if op == "like":
                return _like(str(want)).fullmatch(str(got)) is not None
            if _numeric(want):
                return _compare(op, float(got), float(want))
            return _compare(op, str(got), str(want))
        except (TypeError, ValueError):
            return False


_Ordered = TypeVar("_Ordered", float, str)


def _compare(op: str, a: _Ordered, b: _Ordered) -> bool:
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _like(pattern: str) -> re.Pattern[str]:
    # SQL LIKE: % any run, _ one character
    return re.compile(
        "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S
    )


@dataclass(frozen=True)
class EventRef:
    vendor: str | None
    name: str | None
    major: int | None

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.name is not None and event.get("event_name") != self.name:
            return False
        if self.vendor is not None and event.get("event_vendor") != self.vendor:
            return False
        if self.major is not None:
            version = event.get("event_version") or ""
            if version.split("-", 1)[0] != str(self.major):
                return False
        return True


@dataclass(frozen=True)
class StreamAttribute:
    name: str
    type: str
    aggregation: str
    events: tuple[EventRef, ...] = ()
    prop: Property | None = None
    all: tuple[Criterion, ...] = ()
    any: tuple[Criterion, ...] = ()
    period: float | None = None  # seconds; None: everything kept
    default: Any = None

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.events and not any(e.matches(event) for e in self.events):
            return False
        if self.all and not all(c.matches(event) for c in self.all):
            return False
        return not (self.any and not any(c.matches(event) for c in self.any))

    @property
    def columns(self) -> set[str]:
        props = [self.prop] + [c.prop for c in (*self.all, *self.any)]
        return {p.column for p in props if p is not None}


@dataclass(frozen=True)
class Group:
    """An attribute group version: stream (``attributes``) or batch (``fields``)."""

    name: str
    version: int
    key: str  # the id column: domain_userid, domain_sessionid, user_id, network_userid
    key_name: str | None  # the attribute key's name as published (e.g. "user" for the old keys)
    attributes: tuple[StreamAttribute, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # batch: (name, type)
    batch: str | None = None  # the batch source (serving.batch) for a batch group
    ttl: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def full_name(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def is_stream(self) -> bool:
        return self.batch is None

    def names(self) -> list[str]:
        return [a.name for a in self.attributes] or [f for f, _ in self.fields]


@dataclass(frozen=True)
class Service:
    name: str
    groups: tuple[tuple[str, int], ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def _fail(where: str, why: str) -> DefinitionError:
    return DefinitionError(f"{where}: {why}")


def _name(value: Any, where: str, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise _fail(where, f"{what} must be 1-128 letters, digits or underscores, got {value!r}")
    return value


def duration(value: Any, where: str) -> float | None:
    """Seconds from a number of seconds, an ISO 8601 duration (P1DT2H, PT30M: what pydantic
    writes for a timedelta) or a ``timedelta``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _numeric(value):
        seconds = float(value)
    elif isinstance(value, str) and (
        m := re.fullmatch(
            r"(-)?P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
            r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
            value,
        )
    ):
        w, d, h, mi, s = (float(x or 0) for x in m.groups()[1:])
        seconds = (-1 if m[1] else 1) * (w * 604800 + d * 86400 + h * 3600 + mi * 60 + s)
    else:
        raise _fail(where, f"not a duration: {value!r} (seconds, or ISO 8601 such as PT1H)")
    if seconds <= 0:
        raise _fail(where, f"must be positive, got {value!r}")
    return seconds


def _path(path: Any, where: str) -> tuple[str | int, ...]:
    if not isinstance(path, str) or not path or path == "$":
        raise _fail(where, f"path must be a JSONPath such as $.id, got {path!r}")
    text = path[2:] if path.startswith("$.") else path[1:] if path.startswith("$[") else path
    if path.startswith("$["):
        text = "[" + text
    parts: list[str | int] = []
    pos = 0
    for m in _PATH_PART.finditer(text):
        gap = text[pos : m.start()]
        if gap not in ("", "."):
            raise _fail(where, f"path {path!r}: only dots and [n] indexes are supported")
        parts.append(m[1] if m[1] is not None else int(m[2]))
        pos = m.end()
    if text[pos:] or not parts:
        raise _fail(where, f"path {path!r}: only dots and [n] indexes are supported")
    return tuple(parts)


def compile_property(spec: Any, where: str) -> Property:
    if not isinstance(spec, Mapping):
        raise _fail(where, f"property must be an object with a type, got {spec!r}")
    kind = spec.get("type")
    if kind == "atomic":
        name = spec.get("name")
        if name not in _atomic_names():
            raise _fail(where, f"{name!r} is not an atomic field of the events table")
        return Property(name)
    if kind in ("event", "entity"):
        if spec.get("date_part") is not None:
            raise _fail(where, "date_part is not supported")
        vendor, name, major = spec.get("vendor"), spec.get("name"), spec.get("major_version")
        if not isinstance(vendor, str) or not vendor or not isinstance(name, str) or not name:
            raise _fail(where, f"an {kind} property needs a vendor and a name")
        if not isinstance(major, int) or isinstance(major, bool) or major < 1:
            raise _fail(where, f"major_version must be a positive integer, got {major!r}")
        prefix = "unstruct_event" if kind == "event" else "contexts"
        column = f"{prefix}_{snake(vendor, False)}_{snake(name)}_{major}"
        index = spec.get("index", 0) if kind == "entity" else None
        if kind == "entity" and (not isinstance(index, int) or index < 0):
            raise _fail(where, f"index must be a non-negative integer, got {index!r}")
        return Property(column, _path(spec.get("path"), where), index)
    if kind == "calculated":
        raise _fail(where, "calculated properties are not supported")
    raise _fail(where, f"property type must be atomic, event or entity, got {kind!r}")


def _criteria(spec: Any, where: str) -> tuple[tuple[Criterion, ...], tuple[Criterion, ...]]:
    if spec is None:
        return (), ()
    if not isinstance(spec, Mapping) or set(spec) - {"all", "any"}:
        raise _fail(where, "criteria must be an object with 'all' and/or 'any' lists")
    out: list[tuple[Criterion, ...]] = []
    for part in ("all", "any"):
        items = spec.get(part) or []
        if not isinstance(items, list):
            raise _fail(where, f"criteria.{part} must be a list")
        compiled = []
        for i, c in enumerate(items):
            at = f"{where}: criteria.{part}[{i}]"
            if not isinstance(c, Mapping):
                raise _fail(at, "must be an object with property, operator and value")
            op = c.get("operator")
            if op not in OPERATORS:
                raise _fail(at, f"operator {op!r} is not one of {', '.join(OPERATORS)}")
            value = c.get("value")
            if op == "in" and not isinstance(value, list):
                raise _fail(at, f"'in' needs a list value, got {value!r}")
            if op in ("<", ">", "<=", ">=") and (value is None or isinstance(value, list)):
                raise _fail(at, f"{op!r} needs a number or a string, got {value!r}")
            if op not in ("is null", "is not null", "in") and value is None:
                raise _fail(at, f"{op!r} needs a value")
            compiled.append(Criterion(compile_property(c.get("property"), at), op, value))
        out.append(tuple(compiled))
    return out[0], out[1]


def _events(spec: Any, where: str) -> tuple[EventRef, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise _fail(where, "events must be a list of {vendor, name, version}")
    refs = []
    for e in spec:
        if not isinstance(e, Mapping):
            raise _fail(where, f"an event must be an object, got {e!r}")
        if e.get("event_specification_id"):
            raise _fail(where, "event specifications are not supported: name the event")
        version = e.get("version")
        if version is not None and not re.fullmatch(r"[0-9]+-[0-9]+-[0-9]+", str(version)):
            raise _fail(where, f"event version must look like 1-0-0, got {version!r}")
        major = int(str(version).split("-")[0]) if version else None
        refs.append(EventRef(e.get("vendor"), e.get("name"), major))
    return tuple(refs)


def key_value(event: Mapping[str, Any], key: str) -> Any:
    """The event's id for an attribute key: the client_session entity's for a session or
    device key when the event has one (an app's event), else the atomic column."""
    field_name = CLIENT_SESSION_KEYS.get(key)
    entities = event.get(CLIENT_SESSION) if field_name else None
    if isinstance(entities, str | bytes):  # a JSON column read back from the warehouse
        entities = orjson.loads(entities)
    if entities and isinstance(entities[0], Mapping) and entities[0].get(field_name):
        return entities[0][field_name]
    return event.get(key)


def _key(spec: Any, where: str) -> tuple[str, str | None]:
    """(id column, key name as published: Signals' AttributeKey may have none)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise _fail(where, f"attribute_key must be an object with a name, got {spec!r}")
    name = spec.get("name")
    column = spec.get("key") or name
    if not isinstance(column, str) or column not in KEYS:
        raise _fail(
            where, f"attribute_key {name!r}: Persona keys groups by one of {', '.join(KEYS)}"
        )
    return column, name


def compile_attribute(spec: Any, where: str) -> StreamAttribute:
    if not isinstance(spec, Mapping):
        raise _fail(where, "an attribute must be an object")
    name = _name(spec.get("name"), where)
    where = f"{where}: attribute {name!r}"
    agg = spec.get("aggregation")
    if agg not in AGGREGATIONS:
        raise _fail(
            where, f"aggregation {agg!r} is not supported (supported: {', '.join(AGGREGATIONS)})"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise _fail(where, f"type {kind!r} is not one of {', '.join(TYPES)}")
    prop = spec.get("property")
    compiled = None if prop is None else compile_property(prop, where)
    if agg != "counter" and compiled is None:
        raise _fail(where, f"a {agg} needs a property to aggregate")
    if agg == "unique_list" and not kind.endswith("_list"):
        raise _fail(where, f"a unique_list has a list type (e.g. string_list), not {kind}")
    if agg in NUMERIC and kind not in ("int32", "int64", "double", "float"):
        raise _fail(where, f"a {agg} has a numeric type (int32, int64, double, float), not {kind}")
    if spec.get("time_unit") is not None:
        raise _fail(where, "time_unit belongs to time_since_* aggregations, not supported")
    period = duration(spec.get("period"), f"{where}: period")
    if period is not None and spec.get("ttl") is not None:
        raise _fail(where, "ttl is only valid without a period")
    everything, anything = _criteria(spec.get("criteria"), where)
    return StreamAttribute(
        name, kind, agg, _events(spec.get("events"), where), compiled, everything, anything,
        period, spec.get("default_value"),
    )  # fmt: skip


def compile_group(spec: Any) -> Group:
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"an attribute group must be an object, got {spec!r}")
    name = _name(spec.get("name"), "attribute group")
    version = spec.get("version", 1)
    if version is None:
        version = 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(
            f"attribute group {name!r}", f"version must be a positive integer, got {version!r}"
        )
    where = f"attribute group {name}_v{version}"
    key, key_name = _key(spec.get("attribute_key"), where)
    if spec.get("fields") or spec.get("batch_source") or spec.get("offline"):
        raise _fail(
            where,
            "batch attribute groups are Persona's own (profiles, segments, recommendations, "
            "synced from the warehouse after each refresh); publish stream attribute groups",
        )
    attributes = spec.get("attributes")
    if not isinstance(attributes, list) or not attributes:
        raise _fail(where, "a stream attribute group needs a non-empty list of attributes")
    compiled = tuple(compile_attribute(a, where) for a in attributes)
    seen: set[str] = set()
    for a in compiled:
        if a.name in seen:
            raise _fail(where, f"attribute {a.name!r} is defined twice")
        seen.add(a.name)
    ttl = duration(spec.get("ttl"), f"{where}: ttl")
    return Group(name, version, key, key_name, compiled, ttl=ttl, raw=dict(spec))


def compile_service(spec: Any, groups: Mapping[tuple[str, int], Group]) -> Service:
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"a service must be an object, got {spec!r}")
    name = _name(spec.get("name"), "service")
    where = f"service {name!r}"
    links = spec.get("attribute_groups")
    if not isinstance(links, list) or not links or len(links) > 100:
        raise _fail(where, "attribute_groups must list 1 to 100 {name, version}")
    out = []
    for link in links:
        if not isinstance(link, Mapping) or not isinstance(link.get("name"), str):
            raise _fail(where, f"an attribute group link needs a name, got {link!r}")
        ref = (link["name"], int(link.get("version") or 1))
        if ref not in groups:
            raise _fail(where, f"attribute group {ref[0]}_v{ref[1]} is not published")
        out.append(ref)
    return Service(name, tuple(out), raw=dict(spec))


def parse_qualified(name: str) -> tuple[str, int, str]:
    """``group_v1:attribute`` → (group, 1, attribute)."""
    from serving.errors import BadRequest

    m = QUALIFIED_RE.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise BadRequest(f"attribute {name!r} is not of the form GROUP_vVERSION:ATTRIBUTE")
    return m[1], int(m[2]), m[3]


def load_yaml(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attribute groups, services) as written in a definitions file."""
    import yaml

    text = Path(path).read_text()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(doc, Mapping) or set(doc) - {"attribute_groups", "services"}:
        raise DefinitionError(f"{path}: expected 'attribute_groups' and 'services' lists")
    groups, services = doc.get("attribute_groups") or [], doc.get("services") or []
    if not isinstance(groups, list) or not isinstance(services, list):
        raise DefinitionError(f"{path}: 'attribute_groups' and 'services' must be lists")
    return groups, services

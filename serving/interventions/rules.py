"""Intervention rules as data, in Snowplow Signals' shape (``RuleIntervention``): criteria over
published attributes, the attribute keys to target, the attribute groups sent along.

The same JSON comes from ``serving/interventions.yml`` (a list under ``interventions``) and
from the Signals SDK's ``publish``. A rule is compiled here against the attribute registry; one
that names an unknown attribute group or attribute, or has a malformed criterion, raises
``DefinitionError`` naming the rule and the criterion's place (``criteria.all[1]``), and
nothing is registered: the running rules are untouched.

Criteria: a criterion ``{attribute: "group:attribute", operator, value}`` or a tree of
``all``/``any``/``none`` lists of them. ``group`` is a published attribute group's name (its
latest version when published) or ``name_vN``; stream groups (``serving.stream``), Persona's
batch groups (``profiles``, ``segments``, ``recommendations``) and ``segment_changes``
(``entered``, ``exited``: the segments a user entered or left at a refresh) may be mixed.
Operators: the SDK's (``=``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, ``like``, ``not like``,
``rlike``, ``not rlike``, ``in``, ``not in``, ``is null``, ``is not null``, ``changed``). On a
list attribute (a ``unique_list``, ``segments``), a positive operator holds if some element
meets it, a negated one if none does; an empty list is null.

Persona's additions (YAML or raw JSON; the SDK's model has no field for them): ``cooldown``
(seconds or ISO 8601: the rule may fire again for a target that long after it last did) and
``webhooks`` (names of the ``--webhook`` endpoints it goes to; default: all).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serving.definitions import KEYS, NAME_RE, Group, _like, _numeric, duration
from serving.errors import DefinitionError

OPERATORS = (
    "=", "!=", "<", ">", "<=", ">=", "like", "not like", "rlike", "not rlike", "in", "not in",
    "is null", "is not null", "changed",
)  # fmt: skip
NEGATED = {"!=": "=", "not like": "like", "not rlike": "rlike", "not in": "in"}
# The pseudo-group of segment entries and exits, seen by the batch sync (derived.segment_changes)
CHANGES = "segment_changes"
CHANGE_ATTRIBUTES = ("entered", "exited")
_GROUP_VERSION = re.compile(r"(.+)_v([0-9]+)")


@dataclass(frozen=True)
class AttributeRef:
    """One attribute a rule reads: ``group`` is a group's full name (``shopper_v1``), a batch
    group's name (``profiles``) or ``segment_changes``."""

    group: str
    name: str
    key: str  # the id column the group is keyed by
    kind: str  # stream | batch | change

    @property
    def qualified(self) -> str:
        return f"{self.group}:{self.name}"


@dataclass(frozen=True)
class Leaf:
    ref: AttributeRef
    operator: str
    value: Any
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Node:
    kind: str  # all | any | none
    children: tuple[Node | Leaf, ...]


@dataclass(frozen=True)
class Rule:
    name: str
    version: int
    criteria: Node | Leaf
    reads: tuple[AttributeRef, ...]  # every attribute the criteria read, once
    targets: tuple[str, ...]  # id columns: domain_userid, domain_sessionid, user_id, ...
    payload: tuple[Group, ...] = ()
    cooldown: float | None = None
    webhooks: tuple[str, ...] | None = None  # None: every endpoint
    watches: bool = False  # some criterion uses `changed`: values are remembered
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    # derived once (read per evaluation): name_vN, and whether it fires per segment change
    # (each entry or exit an occurrence of its own)
    ref: str = field(init=False, compare=False)
    on_changes: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", f"{self.name}_v{self.version}")
        object.__setattr__(self, "on_changes", any(r.kind == "change" for r in self.reads))

    @property
    def groups(self) -> set[str]:
        return {r.group for r in self.reads}


def _fail(where: str, why: str) -> DefinitionError:
    return DefinitionError(f"{where}: {why}")


GroupLookup = Callable[[str, int | None], Group | None]


def _resolve(qualified: Any, lookup: GroupLookup, where: str) -> AttributeRef:
    if not isinstance(qualified, str) or qualified.count(":") != 1:
        raise _fail(where, f"attribute must be GROUP:ATTRIBUTE, got {qualified!r}")
    group_name, attribute = qualified.split(":")
    if group_name == CHANGES:
        if attribute not in CHANGE_ATTRIBUTES:
            raise _fail(where, f"{CHANGES} has the attributes {', '.join(CHANGE_ATTRIBUTES)}, "
                        f"not {attribute!r}")  # fmt: skip
        return AttributeRef(CHANGES, attribute, "user_id", "change")
    group = lookup(group_name, None)
    if group is None and (m := _GROUP_VERSION.fullmatch(group_name)):
        group = lookup(m[1], int(m[2]))
    if group is None:
        raise _fail(where, f"attribute {qualified!r}: attribute group {group_name!r} is not "
                    "published")  # fmt: skip
    if attribute not in group.names():
        raise _fail(where, f"attribute {qualified!r}: {group.full_name} has no attribute "
                    f"{attribute!r} (it has {', '.join(group.names())})")  # fmt: skip
    if group.is_stream:
        return AttributeRef(group.full_name, attribute, group.key, "stream")
    return AttributeRef(group.name, attribute, "user_id", "batch")


def _leaf(spec: Mapping[str, Any], lookup: GroupLookup, where: str) -> Leaf:
    unknown = set(spec) - {"attribute", "operator", "value"}
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(sorted(unknown))} in a criterion")
    ref = _resolve(spec.get("attribute"), lookup, where)
    op, value = spec.get("operator"), spec.get("value")
    if op not in OPERATORS:
        raise _fail(where, f"operator {op!r} is not one of {', '.join(OPERATORS)}")
    pattern = None
    if op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            raise _fail(where, f"{op!r} needs a non-empty list value, got {value!r}")
    elif op in ("is null", "is not null", "changed"):
        if value is not None:
            raise _fail(where, f"{op!r} takes no value, got {value!r}")
    elif value is None or isinstance(value, list | dict):
        raise _fail(where, f"{op!r} needs a single value, got {value!r}")
    elif op in ("like", "not like", "rlike", "not rlike") and not isinstance(value, str):
        raise _fail(where, f"{op!r} needs a string pattern, got {value!r}")
    if op in ("like", "not like") and isinstance(value, str):  # str: checked above
        pattern = _like(value)
    elif op in ("rlike", "not rlike") and isinstance(value, str):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise _fail(where, f"{op!r}: {value!r} is not a regular expression ({exc})") from None
    return Leaf(ref, op, value, pattern)


def _criteria(spec: Any, lookup: GroupLookup, where: str, depth: int = 0) -> Node | Leaf:
    if depth > 8:
        raise _fail(where, "criteria nest more than 8 levels deep")
    if not isinstance(spec, Mapping) or not spec:
        raise _fail(where, f"a criterion must be an object, got {spec!r}")
    lists = [k for k in ("all", "any", "none") if k in spec]
    if not lists:
        return _leaf(spec, lookup, where)
    if len(spec) != 1:
        raise _fail(where, "a criteria node holds exactly one of all, any, none, "
                    f"got {', '.join(sorted(map(str, spec)))}")  # fmt: skip
    kind = lists[0]
    items = spec[kind]
    if not isinstance(items, list) or not items:
        raise _fail(f"{where}.{kind}", "must be a non-empty list of criteria")
    children = tuple(
        _criteria(c, lookup, f"{where}.{kind}[{i}]", depth + 1) for i, c in enumerate(items)
    )
    return Node(kind, children)


def _walk(node: Node | Leaf) -> Iterable[Leaf]:
    if isinstance(node, Leaf):
        yield node
    else:
        for child in node.children:
            yield from _walk(child)


def compile_rule(spec: Any, lookup: GroupLookup) -> Rule:
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"an intervention must be an object, got {spec!r}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise DefinitionError(f"intervention: name must be 1-128 letters, digits or "
                              f"underscores, got {name!r}")  # fmt: skip
    version = spec.get("version", 1)
    version = 1 if version is None else version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(
            f"intervention {name!r}", f"version must be a positive integer, got {version!r}"
        )
    where = f"intervention {name}_v{version}"
    if "criteria" not in spec:
        raise _fail(where, "criteria are required")
    criteria = _criteria(spec["criteria"], lookup, f"{where}: criteria")
    reads = tuple(dict.fromkeys(leaf.ref for leaf in _walk(criteria)))
    targets_spec = spec.get("target_attribute_keys")
    if targets_spec is None:
        targets = tuple(dict.fromkeys(r.key for r in reads))
    else:
        if not isinstance(targets_spec, list) or not targets_spec:
            raise _fail(where, "target_attribute_keys must be a non-empty list of {name}")
        names: list[str] = []
        for t in targets_spec:
            n = t.get("name") if isinstance(t, Mapping) else t
            if not isinstance(n, str) or n not in KEYS:
                raise _fail(where, f"target attribute key {n!r} is not one of {', '.join(KEYS)}")
            names.append(n)
        targets = tuple(dict.fromkeys(names))
    payload = []
    for i, link in enumerate(spec.get("payload_attribute_groups") or []):
        at = f"{where}: payload_attribute_groups[{i}]"
        if not isinstance(link, Mapping) or not isinstance(link.get("name"), str):
            raise _fail(at, f"must be {{name, version}}, got {link!r}")
        group = lookup(link["name"], int(link.get("version") or 1))
        if group is None:
            raise _fail(at, f"attribute group {link['name']}_v{link.get('version') or 1} is "
                        "not published")  # fmt: skip
        payload.append(group)
    cooldown = duration(spec.get("cooldown"), f"{where}: cooldown")
    hooks = spec.get("webhooks")
    if hooks is not None and (not isinstance(hooks, list)
                              or not all(isinstance(h, str) for h in hooks)):  # fmt: skip
        raise _fail(where, f"webhooks must be a list of endpoint names, got {hooks!r}")
    watches = any(leaf.operator == "changed" for leaf in _walk(criteria))
    return Rule(name, version, criteria, reads, targets, tuple(payload), cooldown,
                None if hooks is None else tuple(hooks), watches, raw=dict(spec))  # fmt: skip


# --- evaluation
def _positive(op: str, got: Any, leaf: Leaf) -> bool:
    want = leaf.value
    try:
        if op == "=":
            return got == want or str(got) == str(want)
        if op == "in":
            return got in want or str(got) in {str(w) for w in want}
        if op in ("like", "rlike"):
            assert leaf.pattern is not None
            text = str(got)
            found = leaf.pattern.fullmatch(text) if op == "like" else leaf.pattern.search(text)
            return found is not None
        if _numeric(want):
            a, b = float(got), float(want)
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        s, t = str(got), str(want)
        return {"<": s < t, ">": s > t, "<=": s <= t, ">=": s >= t}[op]
    except (TypeError, ValueError):
        return False


def holds(leaf: Leaf, got: Any, previous: Any = None) -> bool:
    """Does ``got`` (the attribute's value now) meet ``leaf``? ``previous``: its value at the
    rule's last evaluation for this target (for ``changed``)."""
    op = leaf.operator
    empty = got is None or (isinstance(got, list) and not got)
    if op == "is null":
        return empty
    if op == "is not null":
        return not empty
    if op == "changed":
        return got != previous and not empty
    if empty:
        return op in NEGATED  # nothing there: "not equal" (and the like) hold
    values = got if isinstance(got, list) else [got]
    positive = NEGATED.get(op, op)
    hit = any(_positive(positive, v, leaf) for v in values)
    return not hit if op in NEGATED else hit


def evaluate(node: Node | Leaf, value: Callable[[Leaf], tuple[Any, Any]]) -> bool:
    """``value(leaf)``: (now, previous) of the leaf's attribute for the target evaluated."""
    if isinstance(node, Leaf):
        got, previous = value(node)
        return holds(node, got, previous)
    if node.kind == "all":
        return all(evaluate(c, value) for c in node.children)
    if node.kind == "any":
        return any(evaluate(c, value) for c in node.children)
    return not any(evaluate(c, value) for c in node.children)


def leaves(rule: Rule) -> list[Leaf]:
    return list(_walk(rule.criteria))

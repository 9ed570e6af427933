"""Batch attributes: after each refresh, the changed users' rows of the warehouse's serving
tables go into the online store, one key per user and group. The request path never touches
the warehouse (ARCHITECTURE.md, decision 8).

Persona's batch attribute groups, keyed by the stitched ``user_id`` (a device that never
logged in is its own user, its ``domain_userid``):

- ``profiles``: every documented column of ``derived.profiles`` (models/profiles/_profiles.yml);
- ``segments``: ``segments``, the user's current segments (``derived.segment_membership``);
- ``recommendations``: ``recommendations`` and ``scores`` of the served rule set
  (``derived.current_user_recommendations``) and its ``rule_set_version``.

Alongside them go what live scoring needs: each device's user (``derived.identity_map``), each
user's item affinities and, for buy-again, what they bought (items of a ``recs_recommend_again``
event type: times, first and latest time, in epoch seconds; ``derived.interactions``), and the
served rule set itself with the popular items of every segment, each repurchased item's rate
and interval and the blend's parameters (``current_item_similarity``, ``current_popular_items``,
``current_item_repurchase``, ``rule_set_versions``).

"Changed" is found by a hash of each row (``hash(profiles)`` in DuckDB) compared with what was
synced last: a refresh that rewrites a table but changes few rows writes few keys.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from serving.definitions import Group
from serving.stores.base import OnlineStore

log = logging.getLogger("persona.serving.batch")

ROOT = Path(__file__).resolve().parents[1]
RULES_KEY = "r:current"
BATCH_META_KEY = "m:batch"
# How many of a user's strongest item affinities live scoring uses.
MAX_AFFINITIES = 50

_TYPES = {
    "VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "HUGEINT": "int64",
    "SMALLINT": "int32", "DOUBLE": "double", "FLOAT": "float", "DECIMAL": "double",
    "BOOLEAN": "bool", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamp",
    "DATE": "string",
    # Snowflake's (NUMBER: by its scale, in _signals_type)
    "TEXT": "string", "TIMESTAMP_NTZ": "timestamp", "TIMESTAMP_TZ": "timestamp",
    "TIMESTAMP_LTZ": "timestamp",
}  # fmt: skip


def batch_key(group: str, user: str) -> str:
    return f"b:{group}:{user}"


def device_key(domain_userid: str) -> str:
    return f"i:{domain_userid}"


def affinity_key(user: str) -> str:
    return f"a:{user}"


def purchase_key(user: str) -> str:
    return f"p:{user}"


def documented_columns(yml: Path = ROOT / "models" / "profiles" / "_profiles.yml") -> list[str]:
    """The columns of ``profiles`` its yml documents, in order."""
    return list(_documented(yml))


@functools.cache
def _documented(yml: Path) -> tuple[str, ...]:
    # parsed once per process: the sync runs after every refresh, and parsing the yml cost
    # 75 ms of its 170 (the package's yml does not change while it runs)
    import yaml

    doc = yaml.safe_load(yml.read_text())
    for model in doc.get("models", []):
        if model.get("name") == "profiles":
            return tuple(c["name"] for c in model.get("columns", []))
    return ()


def builtin_groups(profile_fields: list[tuple[str, str]] | None = None) -> list[Group]:
    """The batch attribute groups, as Signals' external batch groups."""
    fields = profile_fields or [(c, "string") for c in documented_columns()]
    specs = {
        "profiles": (tuple(fields), "derived", "profiles"),
        "segments": ((("segments", "string_list"),), "derived", "segment_membership"),
        "recommendations": (
            (("recommendations", "string_list"), ("scores", "double_list"),
             ("rule_set_version", "string")),
            "derived", "current_user_recommendations",
        ),
    }  # fmt: skip
    groups = []
    for name, (group_fields, schema, table) in specs.items():
        raw = {
            "name": name, "version": 1, "offline": True, "is_published": True,
            "owner": "persona@localhost",
            "description": f"Persona's batch attributes, from {schema}.{table}",
            "attribute_key": {"name": "user_id", "key": "user_id"},
            "fields": [{"name": f, "type": t} for f, t in group_fields],
            "batch_source": {"name": f"persona_{table}", "database": "persona",
                             "schema": schema, "table": table, "timestamp_field": "as_of"},
        }  # fmt: skip
        groups.append(Group(name, 1, "user_id", "user_id", fields=group_fields, batch=table,
                            raw=raw))  # fmt: skip
    return groups


@dataclass
class SyncResult:
    keys: int = 0
    deleted: int = 0
    seconds: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)  # group → users written


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings the sync needs, per warehouse: DuckDB (the live process's own
    file) and Snowflake (the serving tables the dynamic tables keep; tested on fakesnow)."""

    name: str = "duckdb"
    param: str = "?"

    def list_agg(self, expr: str, order: str) -> str:
        return f"list({expr} order by {order})"

    def epoch(self, expr: str) -> str:
        return f"epoch({expr})"

    def in_ids(self, column: str, ids: list[str]) -> tuple[str, list[Any]]:
        return f"{column} in (select unnest(?::varchar[]))", [ids]

    def rows(self, cur: Any) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = cur.fetchall()
        return rows

    def name_of(self, identifier: str) -> str:
        return identifier

    def dicts(self, con: Any, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
        """A query's rows as dicts by lower-case column name, fetched in chunks."""
        for batch in con.sql(sql, params=params).to_arrow_reader(10_000):
            yield from batch.to_pylist()


@dataclass(frozen=True)
class SnowflakeDialect(Dialect):
    name: str = "snowflake"
    param: str = "%s"

    def list_agg(self, expr: str, order: str) -> str:
        return f"array_agg({expr}) within group (order by {order})"

    def epoch(self, expr: str) -> str:
        return f"date_part(epoch_second, {expr})"

    def in_ids(self, column: str, ids: list[str]) -> tuple[str, list[Any]]:
        return f"{column} in ({', '.join(['%s'] * len(ids))})", list(ids)

    def rows(self, cur: Any) -> list[tuple[Any, ...]]:
        """ARRAY and VARIANT values arrive as JSON text."""
        kinds = [d[1] for d in cur.description]
        structured = {i for i, k in enumerate(kinds) if k in _SNOWFLAKE_JSON_TYPES}
        return [
            tuple(orjson.loads(v) if i in structured and isinstance(v, str) else v
                  for i, v in enumerate(row))
            for row in cur.fetchall()
        ]  # fmt: skip

    def name_of(self, identifier: str) -> str:
        return identifier.lower()  # unquoted identifiers are upper case in Snowflake

    def dicts(self, con: Any, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
        """VARIANT and ARRAY values stay JSON text, as DuckDB's JSON columns arrive."""
        cur = con.execute(sql, params)
        names = [self.name_of(d[0]) for d in cur.description]
        while rows := cur.fetchmany(10_000):
            for row in rows:
                yield dict(zip(names, row, strict=True))


# snowflake.connector's type codes (FIELD_TYPES): 5 VARIANT, 9 OBJECT, 10 ARRAY
_SNOWFLAKE_JSON_TYPES = {5, 9, 10}
DUCKDB = Dialect()
SNOWFLAKE = SnowflakeDialect()


class BatchSync:
    """Copies what changed in the serving tables into the online store. Not thread-safe: the
    refresh loop calls it after each refresh, one at a time. ``con`` of ``sync`` is a DuckDB
    connection, or a Snowflake cursor with ``dialect=SNOWFLAKE``."""

    def __init__(self, store: OnlineStore, schema: str = "derived", dialect: Dialect = DUCKDB,
                 required: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self.store = store
        self.schema = schema
        self.dialect = dialect
        # tables whose absence fails the sync (the store keeps its last values) rather than
        # leaving their keys alone: none in DuckDB, whose first refresh creates them
        self.required = required
        self._digests: dict[str, dict[str, int]] = {}
        self._names: dict[str, list[str]] = {}  # the columns of each group's query
        self._present: set[tuple[str, str]] = set()  # (table, column) seen there
        self._fingerprints: dict[str, tuple[Any, ...]] = {}  # table → its last synced
        # the served rule set as last loaded: (its fingerprint, the rules, popular items per
        # segment, their digest)
        self._rules: tuple[Any, Any, dict[str, list[str]], int] | None = None
        self.as_of: str | None = None
        self.profile_fields: list[tuple[str, str]] | None = None
        self._profile_columns: list[str] = []
        self._lock = threading.Lock()
        # called after each sync with (the connection, its result): interventions
        # (serving.interventions) evaluate the rules that read batch attributes there
        self.listeners: list[Callable[[Any, SyncResult], None]] = []

    def _query(self, con: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        cur = con.execute(sql, params) if params is not None else con.execute(sql)
        return self.dialect.rows(cur)

    def _tables(self, con: Any) -> set[str]:
        # this database's only (the live process attaches its snapshot's copy to write it)
        rows = self._query(con, "select table_name from information_schema.tables "
                           f"where lower(table_schema) = {self.dialect.param} "
                           "and table_catalog = current_database()",
                           [self.schema.lower()])  # fmt: skip
        return {self.dialect.name_of(r[0]) for r in rows}

    def sync(self, con: Any) -> SyncResult:
        """One pass over the serving tables that exist (a warehouse before its first refresh
        has none: nothing to do)."""
        started = time.perf_counter()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        result = SyncResult()
        tables = self._tables(con)
        if missing := sorted(self.required - tables):
            raise LookupError(f"{', '.join(f'{self.schema}.{t}' for t in missing)} missing")
        with self._lock:
            s = self.schema
            agg = self.dialect.list_agg
            if "profiles" in tables:
                self._profile_types(con)
                wanted = [c for c, _ in self.profile_fields or []]
                # as_of is the refresh's clock, new on every row each time: left out of the
                # digest, so a refresh writes only the users whose profile changed
                digest = ", ".join(f'"{c}"' for c in self._profile_columns if c != "as_of")
                self._sync(con, result, "profiles",
                           f"select user_id, hash({digest}) from {s}.profiles",
                           lambda ids: self._profiles(con, ids, wanted, now))  # fmt: skip
            if "segment_membership" in tables:
                self._sync_rows(con, result, "segments", (
                    f"select user_id as k, {agg('segment', 'segment')} as segments, "
                    f"max(since) as since from {s}.segment_membership group by user_id"
                ), lambda r: {"segments": r[1], "since": _iso(r[2]), "as_of": now})  # fmt: skip
            # the served rule set's: a retrain or a rollback changes it, not a refresh
            served = f"{s}.current_user_recommendations"
            columns = "user_id, product_id, recommendation_rank, score, rule_set_version"
            look = None
            if "current_user_recommendations" in tables:
                look = self._fingerprint(con, served, columns)
            if look is not None and look != self._fingerprints.get(served):
                self._sync_rows(con, result, "recommendations", (
                    f"select user_id as k, {agg('product_id', 'recommendation_rank')} as items, "
                    f"{agg('score', 'recommendation_rank')} as scores, "
                    f"any_value(rule_set_version) as version "
                    f"from {s}.current_user_recommendations group by user_id"
                ), lambda row: {"recommendations": row[1], "scores": row[2],
                                "rule_set_version": row[3], "as_of": now})  # fmt: skip
                self._fingerprints[served] = look  # once synced: a failed sync looks again
            if "identity_map" in tables:
                self._sync_rows(con, result, "devices", (
                    f"select device_id as k, user_id as v from {s}.identity_map "
                    f"where device_id_type = 'domain_userid' and user_id is not null"
                ), lambda row: row[1], key=device_key)  # fmt: skip
            if "interactions" in tables:
                self._sync_rows(con, result, "affinities", (
                    f"select user_id as k, {agg('product_id', 'affinity_rank')} as items, "
                    f"{agg('affinity', 'affinity_rank')} as affinities from {s}.interactions "
                    f"where affinity_rank <= {MAX_AFFINITIES} group by user_id"
                ), lambda r: dict(zip(r[1], r[2], strict=True)), key=affinity_key)  # fmt: skip
                # buy-again's input: what each user bought, scored live against the clock (a
                # warehouse built before buy-again has no such column until dbt's next run)
                epoch = self.dialect.epoch
                if self._has_column(con, "interactions", "repeatable_events"):
                    self._sync_rows(con, result, "purchases", (
                        f"select user_id as k, {agg('product_id', 'product_id')} as items, "
                        f"{agg('repeatable_events', 'product_id')} as times, "
                        f"{agg(epoch('first_repeatable_at'), 'product_id')} as firsts, "
                        f"{agg(epoch('last_repeatable_at'), 'product_id')} as lasts "
                        f"from {s}.interactions where repeatable_events > 0 group by user_id"
                    ), lambda r: {i: [int(n), float(f), float(la)] for i, n, f, la
                                  in zip(r[1], r[2], r[3], r[4], strict=True)},
                        key=purchase_key)  # fmt: skip
            if {"current_item_similarity", "current_popular_items"} <= tables:
                self._sync_rules(con, result, tables, now)
            self.as_of = now
            # what every batch key reflects: the last sync that found it unchanged or wrote it
            self.store.put_many({BATCH_META_KEY: orjson.dumps({"as_of": now})})
        result.seconds = time.perf_counter() - started
        for listener in self.listeners:
            try:
                listener(con, result)
            except Exception:  # a listener's bug must not fail the refresh
                log.exception("a batch sync listener failed")
        return result

    def _has_column(self, con: Any, table: str, wanted: str) -> bool:
        """Whether ``table`` has the column ``wanted``; once it has, it keeps it (dbt adds
        columns, never drops a served one), so only its absence is asked again next sync."""
        if (table, wanted) in self._present:
            return True
        rows = self._query(con, (
            "select column_name from information_schema.columns where lower(table_schema) = "
            f"{self.dialect.param} and lower(table_name) = {self.dialect.param} "
            "and table_catalog = current_database()"
        ), [self.schema.lower(), table])  # fmt: skip
        if wanted in {self.dialect.name_of(r[0]) for r in rows}:
            self._present.add((table, wanted))
        return (table, wanted) in self._present

    def _profile_types(self, con: Any) -> None:
        documented = documented_columns()
        p = self.dialect.param
        rows = self._query(con, (
            "select column_name, data_type, numeric_scale from information_schema.columns "
            f"where lower(table_schema) = {p} and lower(table_name) = 'profiles' "
            "and table_catalog = current_database() order by ordinal_position"
        ), [self.schema.lower()])  # fmt: skip
        snowflake = self.dialect.name == "snowflake"
        types = {self.dialect.name_of(name): _signals_type(kind, scale, snowflake)
                 for name, kind, scale in rows}  # fmt: skip
        self._profile_columns = list(types)
        self.profile_fields = [(c, types[c]) for c in documented if c in types]

    def _profiles(
        self, con: Any, ids: list[str], wanted: list[str], now: str
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        cols = [c for c in wanted if c != "user_id"]
        where, params = self.dialect.in_ids("user_id", ids)
        quoted = ", ".join(self._column(c) for c in cols)
        rows = self._query(con, f"select user_id, {quoted} from {self.schema}.profiles "
                           f"where {where}", params)  # fmt: skip
        for row in rows:
            payload = {n: _jsonable(v) for n, v in zip(cols, row[1:], strict=True)}
            payload["as_of"] = payload.get("as_of") or now
            yield row[0], payload

    def _column(self, name: str) -> str:
        """A column by its (lower-case) name: quoted in DuckDB; bare, so upper-cased, in
        Snowflake, where dbt created it unquoted."""
        return name if self.dialect.name == "snowflake" else f'"{name}"'

    def _sync(self, con: Any, result: SyncResult, group: str, digests_sql: str,
              fetch: Callable[[list[str]], Iterator[tuple[str, Any]]],
              key: Callable[[str], str] | None = None) -> None:  # fmt: skip
        """``digests_sql``: (key, digest) of every row, hashed by the warehouse; ``fetch``
        (keys) gives the payloads of the rows whose digest changed. A refresh changes a few
        users' rows: the sync moves those, not every row through Python (which, under the
        API's load, cost the live refresh 0.1-0.35 s a cycle: ``python -m bench refresh``)."""
        make_key = key or (lambda user: batch_key(group, user))
        old = self._digests.get(group, {})
        new = dict(self._query(con, digests_sql))
        changed = [u for u, d in new.items() if old.get(u) != d]
        gone = [u for u in old if u not in new]
        items = {}
        for start in range(0, len(changed), 5000):
            for user, payload in fetch(changed[start : start + 5000]):
                items[make_key(user)] = orjson.dumps(payload, default=str)
        self.store.put_many(items)
        self.store.delete(make_key(u) for u in gone)
        self._digests[group] = new
        result.keys += len(items)
        result.deleted += len(gone)
        result.tables[group] = len(items)
        result.changed[group] = changed

    def _fingerprint(self, con: Any, table: str, columns: str) -> tuple[Any, ...]:
        """``table``'s rows as a count and a sum of their hashes, computed in the warehouse:
        cheaper than each key's digest, which an unchanged fingerprint spares."""
        return tuple(self._query(con, f"select count(*), sum(hash({columns})) from {table}")[0])

    def _sync_rows(self, con: Any, result: SyncResult, group: str, sql: str,
                   payload: Callable[[tuple[Any, ...]], Any],
                   key: Callable[[str], str] | None = None) -> None:  # fmt: skip
        """``sql`` selects one row per key: the key as ``k``, then the payload's values
        (``payload`` makes the stored value of a row)."""
        if (names := self._names.get(sql)) is None:
            names = self._names[sql] = [self.dialect.name_of(d[0]) for d in con.execute(
                f"select * from ({sql}) as t where 1 = 0").description]  # fmt: skip
        digest = ", ".join(self._column(n) for n in names[1:])

        def fetch(keys: list[str]) -> Iterator[tuple[str, Any]]:
            where, params = self.dialect.in_ids("k", keys)
            for row in self._query(con, f"select * from ({sql}) as t where {where}", params):
                yield row[0], payload(row)

        self._sync(con, result, group, f"select k, hash({digest}) from ({sql}) as t", fetch,
                   key)  # fmt: skip

    def _sync_rules(self, con: Any, result: SyncResult, tables: set[str], now: str) -> None:
        fingerprint = self._rules_fingerprint(con, tables)
        if fingerprint is None or self._rules is None or self._rules[0] != fingerprint:
            from udfs.duckdb import load_rule_set

            try:
                rules = load_rule_set(con, self.schema, self.dialect.param)
            except LookupError as exc:  # no published rule set yet
                log.debug("no rule set to serve: %s", exc)
                return
            popular: dict[str, list[str]] = {}
            for segment, items in self._query(con, (
                f"select segment, {self.dialect.list_agg('product_id', 'popularity_rank')} "
                f"from {self.schema}.current_popular_items group by segment"
            )):  # fmt: skip
                popular[segment] = items
            digest = hash((rules.version, tuple(sorted((k, tuple(v)) for k, v in popular.items())),
                           tuple(sorted(rules.repurchase.items())),
                           tuple(sorted(rules.params.items()))))  # fmt: skip
            self._rules = (fingerprint, rules, popular, digest)
        _, rules, popular, rules_digest = self._rules
        sizes: dict[str, int] = {}
        if "segment_membership" in tables:
            sizes = dict(self._query(con, (
                f"select segment, count(*) from {self.schema}.segment_membership group by segment"
            )))  # fmt: skip
        digest = hash((rules_digest, tuple(sorted(sizes.items()))))
        if self._digests.get("rules", {}).get("") == digest:
            return
        payload = {
            "version": rules.version, "as_of": now,
            "neighbours": {k: [[n, s] for n, s in v.items()]
                           for k, v in rules.neighbours.items()},
            "popular": popular, "segment_sizes": sizes,
            "repurchase": {k: list(v) for k, v in rules.repurchase.items()},
            "params": dict(rules.params),
        }  # fmt: skip
        self.store.put_many({RULES_KEY: orjson.dumps(payload)})
        self._digests["rules"] = {"": digest}
        result.keys += 1
        result.tables["rules"] = 1

    def _rules_fingerprint(self, con: Any, tables: set[str]) -> tuple[Any, ...] | None:
        """What the served rule set is made of, summed by the warehouse: it changes with a
        retrain or a rollback, seldom, so the sync loads the rule set (every neighbour, into
        Python) only then, not after every refresh. None: not known (the rule set is loaded)."""
        s = self.schema
        parts = [
            "sum(hash(rule_set_version, product_id, similar_product_id, similarity, "
            f"neighbour_rank)) from {s}.current_item_similarity",
            "sum(hash(rule_set_version, segment, product_id, popularity_rank)) "
            f"from {s}.current_popular_items",
        ]  # fmt: skip
        if "current_item_repurchase" in tables:
            parts.append("sum(hash(product_id, repurchase_rate, repurchase_interval_days)) "
                         f"from {s}.current_item_repurchase")  # fmt: skip
        if "rule_set_versions" in tables:
            parts.append(f"sum(hash(rule_set_version, parameters_json)) from {s}.rule_set_versions")
        try:
            return tuple(self._query(con, "select " + ", ".join(f"(select {p})" for p in parts))[0])
        except Exception as exc:  # a warehouse built before a column: loaded every time
            log.debug("no fingerprint of the rule set: %s", exc)
            return None


def _signals_type(data_type: str, scale: int | None, snowflake: bool = False) -> str:
    """A warehouse column type as a Signals attribute type, DuckDB's or Snowflake's."""
    kind = data_type.split("(")[0].upper()
    if kind == "NUMBER":  # Snowflake's integers and decimals alike
        return "int64" if scale == 0 else "double"
    if snowflake and kind == "FLOAT":  # Snowflake's FLOAT is 64-bit
        return "double"
    return _TYPES.get(kind, "string")


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return float(value) if hasattr(value, "__float__") else str(value)

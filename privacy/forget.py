"""Forget a person: resolve every id stitched to them, then delete every row that holds one.

Nothing here lists tables. Every base table of the warehouse is read from
``information_schema``, and a row goes when one of its *identifier columns* (a text column named
``user_id``, ``domain_userid``, ``network_userid``, ``domain_sessionid``, ``device_id`` or
``subject``, or ending in one: ``stitched_user_id``, ``first_domain_userid``) holds an id of
the set; a failed events table loses the raw lines that carry one. So a table added later
(interventions, mobile models) is covered as long as its identifier columns say what they are.

The set is the closure over the raw events (and ``identity_map``): the user's own ids, every
device (``domain_userid``), browser (``network_userid``) and session seen with any id of the
set, until nothing new appears. A device the person shared with someone else is forgotten
whole: the other person's events on it go too (their other devices stay). The all-zero
``network_userid`` of anonymous tracking is no one's and is never in the set.

Order makes a crash harmless: derived tables first, the raw events last (each table in its own
transaction, with the audit row's progress), so a request killed halfway still resolves the
same set from the raw events when it is run again. Identifier-free aggregates of events
(a ``bucket_start`` column: hourly traffic, failed events per hour) are emptied, and the next
refresh rebuilds them whole from the remaining events, so incremental models still equal a full
refresh. Then ``CHECKPOINT``: DuckDB keeps deleted rows in its file until one.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from privacy import ledger
from privacy.salt import hash_id

log = logging.getLogger("persona.privacy")

ANONYMOUS_NUID = "00000000-0000-0000-0000-000000000000"
IDENTIFIER_RE = re.compile(
    r"(^|_)(user_?id|domain_?userid|network_?userid|domain_?sessionid|device_id|subject)$",
    re.IGNORECASE,
)
TEXT_TYPES = ("VARCHAR", "TEXT", "STRING", "CHAR", "CHARACTER VARYING")
# Ids held inside an entity: a mobile app's device and session (the client_session entity's
# userId and sessionId, which the models use as domain_userid and domain_sessionid).
ENTITY_IDS = {"contexts_com_snowplowanalytics_snowplow_client_session_1": ("userId", "sessionId")}
RAW_TABLES = ("failed_events",)  # tables of raw input lines: matched by content
RAW_COLUMNS = ("raw", "message")
SKIP_SCHEMAS = ("information_schema", "pg_catalog", ledger.SCHEMA)
KINDS = {"user_id": "user_id", "domain_userid": "domain_userid",
         "network_userid": "network_userid"}  # fmt: skip
MODES = ("suppress_with_delete", "delete_only", "suppress_only", "unsuppress")
DELETES = ("suppress_with_delete", "delete_only")
SUPPRESSES = ("suppress_with_delete", "suppress_only")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    identifiers: tuple[str, ...]  # identifier columns
    raw: tuple[str, ...] = ()  # raw-input columns (failed events)
    bucketed: bool = False  # an identifier-free aggregate of events by time bucket
    nested: tuple[str, ...] = ()  # SQL expressions of ids inside entities (ENTITY_IDS)

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def tables(cur: Any) -> list[Table]:
    """Every base table, with its identifier columns, in the order a forget deletes them."""
    cur.execute(
        "select c.table_schema, c.table_name, c.column_name, upper(c.data_type) "
        "from information_schema.columns c join information_schema.tables t "
        "on t.table_schema = c.table_schema and t.table_name = c.table_name "
        "where t.table_type = 'BASE TABLE' order by c.table_schema, c.table_name, "
        "c.ordinal_position"
    )
    columns: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, name, column, kind in cur.fetchall():
        if schema.lower() not in SKIP_SCHEMAS:
            columns.setdefault((schema, name), []).append((column, kind))
    found = []
    for (schema, name), cols in columns.items():
        text = [c for c, kind in cols if kind.startswith(TEXT_TYPES)]
        ids = tuple(c for c in text if IDENTIFIER_RE.search(c))
        raw = (
            tuple(c for c in text if c.lower() in RAW_COLUMNS) if name.lower() in RAW_TABLES else ()
        )
        names = {c.lower() for c, _ in cols}
        bucketed = not ids and not raw and "bucket_start" in names and schema.lower() != "atomic"
        nested = tuple(
            _nested(c, kind, key)
            for c, kind in cols if kind in ("JSON", "ARRAY", "VARIANT")
            and c.lower() in ENTITY_IDS
            for key in ENTITY_IDS[c.lower()]
        )  # fmt: skip
        if ids or raw or bucketed or nested:
            found.append(Table(schema, name, ids, raw, bucketed, nested))

    def order(t: Table) -> tuple[int, str]:
        # derived first; identity maps, then raw input last: the closure is resolved from them
        if t.schema.lower() == "atomic":
            return (3 if t.name.lower() == "events" else 2, t.label)
        return (1 if t.name.lower() == "identity_map" else 0, t.label)

    return sorted(found, key=order)


def _nested(column: str, kind: str, key: str) -> str:
    """The first entity's ``key``: DuckDB's JSON column, or Snowflake's ARRAY / VARIANT."""
    if kind == "JSON":
        return f"json_extract_string({quote(column)}, '$[0].{key}')"
    return f"{quote(column)}[0]:{key}::varchar"


@dataclass
class Resolved:
    ids: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.ids)


def _load_ids(cur: Any, ids: Iterable[str]) -> None:
    cur.execute("create or replace temporary table forget_ids (id varchar)")
    rows = [[i] for i in sorted(set(ids))]
    if rows:
        cur.executemany("insert into forget_ids values (?)", rows)


def _usable(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != "" and value != ANONYMOUS_NUID


def resolve(cur: Any, given: Iterable[str], found: list[Table] | None = None,
            max_rounds: int = 10) -> Resolved:  # fmt: skip
    """The closure of ``given`` over the raw events and the identity maps."""
    found = tables(cur) if found is None else found
    ids = {i for i in given if _usable(i)}
    events = [t for t in found if t.name.lower() == "events" and t.schema.lower() == "atomic"]
    maps = [t for t in found if t.name.lower() == "identity_map"
            and {"device_id", "user_id"} <= {c.lower() for c in t.identifiers}]  # fmt: skip
    for _ in range(max_rounds):
        _load_ids(cur, ids)
        new: set[str] = set()
        for t in events:
            cols = [c for c in t.identifiers if c.lower() in
                    ("user_id", "domain_userid", "network_userid", "domain_sessionid")]  # fmt: skip
            seen = [quote(c) for c in cols if c.lower() != "user_id"] + list(t.nested)
            if not seen:
                continue
            where = " or ".join(f"{e} in (select id from forget_ids)"
                                for e in [quote(c) for c in cols] + list(t.nested))  # fmt: skip
            union = " union ".join(
                f"select {e} as id from {t.qualified} where {where}" for e in seen
            )
            cur.execute(f"select distinct id from ({union}) as found")
            new |= {r[0] for r in cur.fetchall()}
        for t in maps:
            cur.execute(f"select distinct device_id from {t.qualified} "
                        "where user_id in (select id from forget_ids)")  # fmt: skip
            new |= {r[0] for r in cur.fetchall()}
        new = {i for i in new if _usable(i)} - ids
        if not new:
            break
        ids |= new
    return Resolved(ids)


def raw_pattern(value: str) -> str:
    """A regular expression matching the id as a whole token in a raw line, as itself or
    URL-encoded (a tracker payload's query string); a bound value, never SQL."""
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    alternatives = "|".join(re.escape(f) for f in sorted(forms))
    return rf"(^|[^A-Za-z0-9_.%-])({alternatives})([^A-Za-z0-9_-]|$)"


def _where(table: Table, ids: set[str], engine: str) -> tuple[str, list[str]] | None:
    """The condition (and its bound values) for the rows of ``table`` that hold an id of the
    set (``forget_ids`` holds them already); None when nothing in it can."""
    conditions = [f"{e} in (select id from forget_ids)"
                  for e in [quote(c) for c in table.identifiers] + list(table.nested)]  # fmt: skip
    params: list[str] = []
    for column in table.raw:
        for value in sorted(ids):
            if engine == "snowflake":  # REGEXP_LIKE matches the whole text: wrap the pattern
                conditions.append(f"regexp_like({quote(column)}, ?, 's')")
                params.append(".*" + raw_pattern(value) + ".*")
            else:
                conditions.append(f"regexp_matches({quote(column)}, ?)")
                params.append(raw_pattern(value))
    return (" or ".join(conditions), params) if conditions else None


def count_rows(cur: Any, table: Table, ids: set[str], engine: str = "duckdb") -> int:
    """How many rows ``delete_rows`` deletes from a table with identifiers (reads only)."""
    if table.bucketed:
        cur.execute(f"select count(*) from {table.qualified}")
        return int(cur.fetchall()[0][0])
    where = _where(table, ids, engine)
    if where is None:
        return 0
    cur.execute(f"select count(*) from {table.qualified} where {where[0]}", where[1])
    return int(cur.fetchall()[0][0])


def delete_rows(cur: Any, table: Table, ids: set[str], removed_events: bool,
                engine: str = "duckdb") -> int:  # fmt: skip
    """Delete the rows of ``table`` that hold an id (``forget_ids`` holds them already)."""
    if table.bucketed and not removed_events:
        return 0
    count = count_rows(cur, table, ids, engine)
    if count:
        if table.bucketed:
            cur.execute(f"delete from {table.qualified}")
        else:
            where = _where(table, ids, engine)
            assert where is not None
            cur.execute(f"delete from {table.qualified} where {where[0]}", where[1])
    return count


@dataclass
class Preview:
    """What a forget of an id would delete, counted without changing anything."""

    ids_resolved: int
    rows: dict[str, int]  # table -> rows holding one of the ids
    emptied: dict[str, int]  # identifier-free aggregates emptied (and rebuilt by the refresh)


def preview(cur: Any, value: str) -> Preview:
    """Count, per table, the rows a delete of ``value`` removes: the same resolution and the
    same conditions as ``forget``, on any connection that may create a temporary table (a
    read-only DuckDB connection may)."""
    found = tables(cur)
    resolved = resolve(cur, [value], found)
    _load_ids(cur, resolved.ids)
    try:
        rows = {t.label: count_rows(cur, t, resolved.ids) for t in found if not t.bucketed}
    finally:
        cur.execute("drop table if exists forget_ids")
    removes_events = any(rows.get(t.label) for t in found
                         if t.raw or t.name.lower() == "events")  # fmt: skip
    emptied = {t.label: count_rows(cur, t, set()) for t in found if t.bucketed and removes_events}
    return Preview(len(resolved), {k: n for k, n in rows.items() if n}, emptied)


@dataclass
class Ids:
    """What the user asked to forget, by kind (``--user-id``, ``--domain-userid``, ...)."""

    kind: str
    value: str


@dataclass
class Outcome:
    request: ledger.Request
    resumed: bool = False

    def line(self) -> str:
        r = self.request
        total = sum(r.rows_removed.values())
        if r.status == ledger.NOTHING:
            return f"{r.mode} {r.id_kind} (hash {r.id_hash[:12]}): nothing found"
        tables = ", ".join(f"{t} {n}" for t, n in r.rows_removed.items() if n) or "no rows"
        resumed = " (resumed)" if self.resumed else ""
        return (f"{r.mode} {r.id_kind} (hash {r.id_hash[:12]}){resumed}: {r.status}, "
                f"{r.ids_resolved} ids, {total:,} rows removed ({tables})")  # fmt: skip


def forget(
    con: Any,
    target: Ids,
    mode: str,
    salt: bytes,
    *,
    on_suppress: Callable[[dict[str, Any]], None] | None = None,
    checkpoint: bool = True,
    after_table: Callable[[str], None] | None = None,
    engine: str = "duckdb",
) -> Outcome:
    """One request on a DuckDB connection (or a Snowflake connector's, ``engine="snowflake"``,
    made with ``paramstyle="qmark"``); resumes the same id and mode's unfinished one.

    ``on_suppress`` is told the hashes just suppressed (hash -> before, None: always), or
    lifted (hash -> ``"lift"``): the live process updates its loader's suppression step with it.
    ``after_table`` is called after each table's commit (tests interrupt a request with it)."""
    if mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(target.value, str) or not target.value.strip():
        raise ValueError(f"{target.kind}: an id to forget, not {target.value!r}")
    cur = con.cursor()
    ledger.ensure(cur)
    id_hash = hash_id(salt, target.value)
    previous = ledger.unfinished(cur, id_hash, mode)
    request = previous or ledger.Request(id_hash, target.kind, mode)
    if previous is None:
        ledger.insert(cur, request)
    if mode == "unsuppress":
        lifted = ledger.unsuppress(cur, id_hash)
        request.ids_resolved = lifted
        request.status = ledger.DONE if lifted else ledger.NOTHING
        request.completed_at = ledger.now()
        ledger.update(cur, request)
        if on_suppress is not None and lifted:
            on_suppress({"lift": id_hash})
        return Outcome(request)
    found = tables(cur)
    resolved = resolve(cur, [target.value], found)
    _load_ids(cur, resolved.ids)
    request.ids_resolved = max(request.ids_resolved, len(resolved))
    if mode in DELETES:
        removed_events = any(request.rows_removed.get(t.label) for t in found if t.raw
                             or t.name.lower() == "events")  # fmt: skip
        pending = [t for t in found if t.label not in request.rows_removed]
        # the raw tables decide whether bucketed aggregates are emptied: count them first
        raw_first = [t for t in pending if not t.bucketed] + [t for t in pending if t.bucketed]
        for i, table in enumerate(raw_first):
            request.stopped_at = table.label
            cur.execute("begin transaction")
            try:
                n = delete_rows(cur, table, resolved.ids, removed_events, engine)
                request.rows_removed[table.label] = n
                nxt = raw_first[i + 1].label if i + 1 < len(raw_first) else None
                request.stopped_at = nxt
                ledger.update(cur, request)
                cur.execute("commit")
            except BaseException:
                cur.execute("rollback")
                raise
            if n and (table.raw or table.name.lower() == "events"):
                removed_events = True
            if after_table is not None:
                after_table(table.label)
    hashes = sorted({hash_id(salt, i) for i in resolved.ids} | {id_hash})
    if mode in SUPPRESSES or mode == "delete_only":
        # delete_only: events collected before now, still in the collector's spool, are
        # dropped when the loader reads them; later ones are loaded
        before = None if mode in SUPPRESSES else request.requested_at
        cur.execute("begin transaction")
        cur.execute(f"delete from {ledger.SUPPRESSED} where request_id = ?", [request.request_id])
        ledger.suppress(cur, hashes, request.request_id, before)
        cur.execute("commit")
        if on_suppress is not None:
            on_suppress(dict.fromkeys(hashes, before))
    nothing = len(resolved) <= 1 and not any(request.rows_removed.values())
    request.status = ledger.NOTHING if nothing and mode != "suppress_only" else ledger.DONE
    request.completed_at = ledger.now()
    request.stopped_at = None
    ledger.update(cur, request)
    cur.execute("drop table if exists forget_ids")
    if checkpoint and engine == "duckdb":  # Snowflake: Time Travel, then Fail-safe (docs)
        durable(cur)
    return Outcome(request, resumed=previous is not None)


def durable(cur: Any, attempts: int = 20) -> bool:
    """CHECKPOINT: the deleted rows leave the file. Another connection's open write
    transaction makes DuckDB refuse; it is retried for a few seconds, then left to the next
    checkpoint (DuckDB's own, at the WAL's threshold or when the file is closed)."""
    import time

    for attempt in range(attempts):
        try:
            cur.execute("checkpoint")
            return True
        except Exception as exc:
            if attempt == attempts - 1:
                log.warning("forget: checkpoint deferred (%s); run CHECKPOINT later", exc)
            time.sleep(0.25)
    return False


def compact(warehouse: str) -> None:
    """Rewrite the DuckDB file from its live rows (``COPY FROM DATABASE`` into a new file,
    then an atomic rename): a checkpoint marks deleted rows' blocks free but leaves their bytes
    in the file until reused. Needs the file closed by everyone else, and room for a copy."""
    import os

    import duckdb

    fresh = f"{warehouse}.compact"
    if os.path.exists(fresh):
        os.remove(fresh)
    con = duckdb.connect()
    try:
        con.execute("attach ? as old (read_only)", [warehouse])
        con.execute("attach ? as fresh", [fresh])
        con.execute("copy from database old to fresh")
        con.execute("detach fresh")
        con.execute("detach old")
    finally:
        con.close()
    os.replace(fresh, warehouse)

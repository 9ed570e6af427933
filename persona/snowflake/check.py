"""A read-only first-run checklist for a real account: each item docs/snowflake.md lists as
unverified offline, asked of the account, with what to do when it fails. Nothing here writes:
only SELECT, SHOW and DESCRIBE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loader.contract import ATOMIC_NAMES, LOAD_TSTAMP
from loader.sinks.snowflake_tables import FAILED_EVENTS_COLUMNS, MODEL_ENTITY_COLUMNS
from persona.snowflake.setup import ROLES, Names

PASS, FAIL, UNKNOWN = "pass", "FAIL", "unknown"
#: Models Snowflake must refresh INCREMENTAL (the rest of the dynamic tables read the clock).
FULL_REFRESH = {
    "PROFILES",
    "AUDIENCES",
    "ANOMALIES",
    "TRAFFIC_ANOMALIES",
    "BEHAVIOUR_ANOMALIES",
    "DATA_QUALITY_ANOMALIES",
}


@dataclass(frozen=True)
class Result:
    item: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f"\n        fix: {self.fix}" if self.status != PASS and self.fix else ""
        return f"[{self.status:>7}] {self.item}: {self.detail}{fix}"


def _rows(cursor: Any, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cursor.execute(sql, params)
    names = [d[0].lower() for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _columns(cursor: Any, n: Names, schema: str, table: str) -> set[str]:
    rows = _rows(
        cursor,
        f"select column_name from {n.database}.information_schema.columns "
        "where table_schema = %s and table_name = %s",
        (schema, table),
    )
    return {r["column_name"].lower() for r in rows}


def schemas(cursor: Any, n: Names) -> Result:
    databases = _rows(cursor, f"show databases like '{n.database}'")
    if not databases:
        return Result(
            "schemas",
            FAIL,
            f"missing database {n.database} and its schemas",
            "persona snowflake setup",
        )
    rows = _rows(cursor, f"select schema_name from {n.database}.information_schema.schemata")
    missing = set(n.schemas) - {r["schema_name"].upper() for r in rows}
    if missing:
        return Result("schemas", FAIL, f"missing {sorted(missing)}", "persona snowflake setup")
    return Result("schemas", PASS, ", ".join(n.schemas))


def events_table(cursor: Any, n: Names) -> Result:
    have = _columns(cursor, n, "ATOMIC", "EVENTS")
    if not have:
        return Result("ATOMIC.EVENTS", FAIL, "no such table", "persona snowflake setup")
    want = set(ATOMIC_NAMES) | {LOAD_TSTAMP} | set(MODEL_ENTITY_COLUMNS)
    missing = sorted(want - have)
    if missing:
        return Result(
            "ATOMIC.EVENTS",
            FAIL,
            f"missing columns {missing}",
            "persona snowflake setup (adds the entity columns the models read)",
        )
    return Result("ATOMIC.EVENTS", PASS, f"{len(have)} columns, every one the models read")


def failed_events_table(cursor: Any, n: Names) -> Result:
    have = _columns(cursor, n, "ATOMIC", "FAILED_EVENTS")
    missing = sorted({name for name, _ in FAILED_EVENTS_COLUMNS} - have)
    if missing:
        detail = "no such table" if not have else f"missing columns {missing}"
        return Result("ATOMIC.FAILED_EVENTS", FAIL, detail, "persona snowflake setup")
    return Result("ATOMIC.FAILED_EVENTS", PASS, "columns as the loader writes them")


def change_tracking(cursor: Any, n: Names) -> Result:
    rows = _rows(cursor, f"show tables like 'EVENTS' in schema {n.database}.ATOMIC")
    if not rows or "change_tracking" not in rows[0]:
        return Result(
            "change tracking on EVENTS",
            UNKNOWN,
            "SHOW TABLES gave no change_tracking",
            "alter table ATOMIC.EVENTS set change_tracking = true",
        )
    if str(rows[0]["change_tracking"]).upper() != "ON":
        return Result(
            "change tracking on EVENTS",
            FAIL,
            "off: dynamic tables would refresh FULL",
            "alter table ATOMIC.EVENTS set change_tracking = true",
        )
    return Result("change tracking on EVENTS", PASS, "on")


def loader_privileges(cursor: Any, n: Names) -> Result:
    role = n.role("LOADER")
    rows = _rows(cursor, f"show grants to role {role}")
    held = {(str(r.get("privilege")).upper(), str(r.get("name")).upper()) for r in rows}
    events = f"{n.database}.ATOMIC.EVENTS"
    missing = [
        p
        for p in ("INSERT", "OWNERSHIP")
        if not any(priv == p and name.endswith(events) for priv, name in held)
    ]
    if missing:
        return Result(
            f"{role} privileges",
            FAIL,
            f"lacks {missing} on {events}",
            "persona snowflake setup (the loader inserts through the table's "
            "default pipe and owns it to add entity columns)",
        )
    return Result(f"{role} privileges", PASS, f"INSERT and OWNERSHIP on {events}")


def streaming_pipe(cursor: Any, n: Names) -> Result:
    """The table's default pipe (table mode) exists once the table does; asking for it proves
    the account has Snowpipe Streaming's high-performance architecture."""
    rows = _rows(cursor, f'describe pipe {n.database}.ATOMIC."EVENTS-STREAMING"')
    if not rows:
        return Result(
            "pipe EVENTS-STREAMING",
            FAIL,
            "not found",
            "use an account and region with Snowpipe Streaming high-performance",
        )
    return Result("pipe EVENTS-STREAMING", PASS, "present")


def roles(cursor: Any, n: Names) -> Result:
    have = {str(r["name"]).upper() for r in _rows(cursor, f"show roles like '{n.prefix}_%'")}
    missing = sorted({n.role(r) for r in ROLES} - have)
    if missing:
        return Result("roles", FAIL, f"missing {missing}", "persona snowflake setup")
    return Result("roles", PASS, ", ".join(n.role(r) for r in ROLES))


def dynamic_tables(cursor: Any, n: Names) -> Result:
    """After `dbt build`: each dynamic table's refresh mode as Snowflake decided it."""
    rows = _rows(cursor, f"show dynamic tables in schema {n.database}.{n.derived}")
    if not rows:
        return Result("dynamic tables", FAIL, "none yet", "PERSONA_TARGET=snowflake dbt build")
    wrong = [
        f"{r['name']}: {r.get('refresh_mode')} ({r.get('refresh_mode_reason') or ''})"
        for r in rows
        if str(r["name"]).upper() not in FULL_REFRESH
        and str(r.get("refresh_mode")).upper() != "INCREMENTAL"
    ]
    if wrong:
        return Result(
            "dynamic tables refresh incrementally",
            FAIL,
            "; ".join(wrong),
            "see docs/snowflake.md, 'Incremental refresh': the construct named in "
            "refresh_mode_reason",
        )
    return Result("dynamic tables refresh incrementally", PASS, f"{len(rows)} dynamic tables")


def masking(cursor: Any, n: Names) -> Result:
    rows = _rows(cursor, f"show masking policies in schema {n.database}.GOVERNANCE")
    if not any(str(r["name"]).upper() == "PII_MASK" for r in rows):
        return Result("PII masking", FAIL, "no GOVERNANCE.PII_MASK", "persona snowflake setup")
    tag = n.qualified("GOVERNANCE", "PII")
    users = n.qualified(n.derived, "USERS")
    (value,) = _rows(cursor, f"select system$get_tag('{tag}', '{users}.USER_ID', 'column') as v")
    if value["v"] is None:
        return Result(
            "PII masking",
            FAIL,
            f"{users}.USER_ID is not tagged",
            "dbt build as PERSONA_TRANSFORMER (the post-hook tags meta pii columns)",
        )
    return Result("PII masking", PASS, "policy on the tag; users.user_id tagged")


CHECKS: tuple[Callable[[Any, Names], Result], ...] = (
    schemas,
    events_table,
    failed_events_table,
    change_tracking,
    roles,
    loader_privileges,
    streaming_pipe,
    dynamic_tables,
    masking,
)


def run(cursor: Any, names: Names | None = None) -> list[Result]:
    """Every check; one that cannot be asked (a statement the account or its role refuses)
    is UNKNOWN with the error, never a crash."""
    n = names or Names()
    results = []
    for check in CHECKS:
        try:
            results.append(check(cursor, n))
        except Exception as exc:  # the account's answer is the finding
            item = check.__name__.replace("_", " ")
            message = str(exc).splitlines()[0][:200]
            results.append(
                Result(
                    item,
                    UNKNOWN,
                    f"could not ask: {message}",
                    "run as a role that can see the object (e.g. PERSONA_ADMIN)",
                )
            )
    return results

"""The complete, idempotent DDL of a Persona account: database, schemas, warehouse, roles and
grants, the atomic tables with change tracking and the entity columns the models read, and the
masking of PII columns. Every statement is ``if not exists``, ``add column if not exists``,
a grant (granting twice changes nothing) or ``set ... force``, so running it twice changes
nothing.

Roles (each granted to PERSONA_ADMIN, which is granted to SYSADMIN):
- PERSONA_LOADER writes ATOMIC (the Snowpipe Streaming sink; owns EVENTS for ADD COLUMN);
- PERSONA_TRANSFORMER runs dbt: reads ATOMIC, creates the dynamic tables and views;
- PERSONA_ANALYST reads the derived models (dbt ``grants:``), PII columns masked;
- PERSONA_ACTIVATION reads segments and audiences only (dbt ``grants:``), ids in clear: it
  exists to send them to ad platforms and CRMs;
- PERSONA_ADMIN holds the others.

PII: columns marked ``meta: {pii: true}`` in the models' yml get the tag GOVERNANCE.PII (a dbt
post-hook, macros/cross_database/pii_tags.sql); the tag carries the masking policy, so a new
model's PII columns are masked as soon as they are tagged. Masked values are a stable hash
(``pii:`` and 16 hex digits), so analysts can still count and join users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loader.sinks import snowflake_tables as tables

ROLES = ("LOADER", "TRANSFORMER", "ANALYST", "ACTIVATION", "ADMIN")
#: Roles that see PII in clear (the masking policy's allow list).
CLEAR = ("LOADER", "TRANSFORMER", "ACTIVATION", "ADMIN")
_NAME = re.compile(r"[A-Z_][A-Z0-9_$]*")


@dataclass(frozen=True)
class Names:
    """The account's object names (identifiers, upper case), checked once here."""

    database: str = "PERSONA"
    warehouse: str = "PERSONA_WH"
    derived: str = "DERIVED"
    prefix: str = "PERSONA"

    def __post_init__(self) -> None:
        for key, value in vars(self).items():
            if not _NAME.fullmatch(value):
                raise ValueError(f"{key} {value!r} is not a plain Snowflake identifier")

    def role(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    @property
    def schemas(self) -> tuple[str, ...]:
        return ("ATOMIC", self.derived, f"{self.derived}_INTERNAL", "GOVERNANCE")

    def qualified(self, schema: str, name: str) -> str:
        return f"{self.database}.{schema}.{name}"


def statements(names: Names | None = None) -> list[str]:
    """The DDL, in the order it must run (as a role that can create roles, e.g. ACCOUNTADMIN
    or SYSADMIN plus USERADMIN/SECURITYADMIN)."""
    n = names or Names()
    db, wh = n.database, n.warehouse
    events, failed = n.qualified("ATOMIC", "EVENTS"), n.qualified("ATOMIC", "FAILED_EVENTS")
    tag, policy = n.qualified("GOVERNANCE", "PII"), n.qualified("GOVERNANCE", "PII_MASK")
    sql = [f"create database if not exists {db}"]
    sql += [f"create schema if not exists {db}.{s}" for s in n.schemas]
    sql.append(
        f"create warehouse if not exists {wh} warehouse_size = xsmall auto_suspend = 60 "
        "auto_resume = true initially_suspended = true"
    )
    sql += [f"create role if not exists {n.role(r)}" for r in ROLES]
    sql += [f"grant role {n.role(r)} to role {n.role('ADMIN')}" for r in ROLES if r != "ADMIN"]
    sql.append(f"grant role {n.role('ADMIN')} to role SYSADMIN")
    # the atomic tables, as the Snowflake Streaming Loader lays them out
    sql += [tables.events_table(events), tables.failed_events_table(failed)]
    sql.append(f"alter table {events} set change_tracking = true")
    sql.append(f"alter table {failed} set change_tracking = true")
    sql += [tables.add_entity_column(events, c) for c in tables.MODEL_ENTITY_COLUMNS]
    for role in ROLES:
        sql.append(f"grant usage on database {db} to role {n.role(role)}")
        sql.append(f"grant usage on warehouse {wh} to role {n.role(role)}")
    loader, transformer = n.role("LOADER"), n.role("TRANSFORMER")
    sql += [
        f"grant usage on schema {db}.ATOMIC to role {loader}",
        f"grant insert, select on table {events} to role {loader}",
        f"grant insert, select on table {failed} to role {loader}",
        # ADD COLUMN for a new entity schema needs ownership of the table
        f"grant ownership on table {events} to role {loader} copy current grants",
        f"grant usage on schema {db}.ATOMIC to role {transformer}",
        f"grant select on all tables in schema {db}.ATOMIC to role {transformer}",
        f"grant select on future tables in schema {db}.ATOMIC to role {transformer}",
    ]
    for schema in (n.derived, f"{n.derived}_INTERNAL"):
        sql.append(
            f"grant usage, create table, create dynamic table, create view on schema "
            f"{db}.{schema} to role {transformer}"
        )
    for role in ("ANALYST", "ACTIVATION"):  # the objects themselves: dbt grants: per layer
        sql.append(f"grant usage on schema {db}.{n.derived} to role {n.role(role)}")
    # PII: one tag, one policy on it; dbt tags the columns (meta pii) as it builds them
    clear = " or ".join(f"is_role_in_session('{n.role(r)}')" for r in CLEAR)
    sql += [
        f"create tag if not exists {tag} comment = 'Persona: a column holding personal data "
        "(models yml meta pii); masked by PII_MASK'",
        f"create masking policy if not exists {policy} as (val varchar) returns varchar -> "
        f"case when val is null or {clear} then val else 'pii:' || left(sha2(val), 16) end",
        f"alter tag {tag} set masking policy {policy} force",
        f"grant apply on tag {tag} to role {transformer}",
        f"grant usage on schema {db}.GOVERNANCE to role {transformer}",
    ]
    return sql


def script(names: Names | None = None) -> str:
    return "".join(f"{s};\n" for s in statements(names))

"""Each dynamic table with refresh_mode INCREMENTAL stays within what Snowflake documents as
supported for incremental refresh (docs.snowflake.com, "Supported queries for dynamic
tables"). Snowflake does not refuse such a table: it silently refreshes it in full, every time,
at full cost. So a change that brings in an unsupported construct fails here, naming it.

Checked (the constructs that page lists as unsupported for incremental refresh):
- a subquery outside FROM (``where x in (select ...)``, ``exists``, a scalar subquery);
- LATERAL other than ``lateral flatten``;
- WITH RECURSIVE;
- a non-deterministic function in the select list (RANDOM, UUID_STRING, SEQ*, and the clock:
  CURRENT_TIMESTAMP and friends are allowed only as filters);
- INTERSECT / EXCEPT (MINUS): of the set operators only UNION [ALL] is listed as supported.
What this cannot see (a real account's ``refresh_mode_reason`` does, `persona snowflake
check`): functions Snowflake has not made incremental, external functions, data types.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

NONDETERMINISTIC = {
    "RANDOM",
    "RAND",
    "UUID_STRING",
    "SEQ1",
    "SEQ2",
    "SEQ4",
    "SEQ8",
    "CURRENT_TIMESTAMP",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "SYSDATE",
    "GETDATE",
    "LOCALTIMESTAMP",
    "SYSTIMESTAMP",
}
CLOCK = (exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime)


def _is_source(select: exp.Expression) -> bool:
    """Whether a nested query sits where Snowflake allows one: a CTE body, a FROM or JOIN
    source, or a branch of a set operation that itself sits there."""
    node = select.parent
    while isinstance(node, exp.Subquery | exp.Union | exp.Paren):
        if isinstance(node.parent, exp.From | exp.Join | exp.CTE):
            return True
        node = node.parent
    return isinstance(node, exp.CTE | exp.From | exp.Join | exp.Create) or node is None


def unsupported(sql: str) -> list[str]:
    """The constructs in ``sql`` that make Snowflake refresh a dynamic table in full."""
    tree = sqlglot.parse_one(sql, read="snowflake")
    found = []
    for select in tree.find_all(exp.Select):
        if select is not tree and not _is_source(select):
            found.append(f"subquery outside FROM: {select.sql('snowflake')[:60]}")
    for node in tree.find_all(exp.Exists):
        found.append(f"EXISTS: {node.sql('snowflake')[:60]}")
    for lateral in tree.find_all(exp.Lateral):
        if not isinstance(lateral.this, exp.Explode) and "FLATTEN" not in lateral.sql().upper():
            found.append(f"LATERAL other than FLATTEN: {lateral.sql('snowflake')[:60]}")
    for with_ in tree.find_all(exp.With):
        if with_.args.get("recursive"):
            found.append("WITH RECURSIVE")
    for node in tree.find_all(exp.Intersect, exp.Except):
        found.append(f"{node.key.upper()}")
    for select in tree.find_all(exp.Select):
        for projection in select.expressions:
            for func in projection.find_all(exp.Func):
                name = func.sql_name() if not isinstance(func, exp.Anonymous) else func.name
                if isinstance(func, CLOCK) or name.upper() in NONDETERMINISTIC:
                    found.append(f"non-deterministic {name.upper()} in the select list")
    return found


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("select a from t where a in (select b from u)", "subquery outside FROM"),
        ("select a, (select max(b) from u) as m from t", "subquery outside FROM"),
        ("select a from t where exists (select 1 from u where u.b = t.a)", "EXISTS"),
        ("select a from t minus select a from u", "EXCEPT"),
        ("select a from t intersect select a from u", "INTERSECT"),
        ("select a, random() as r from t", "non-deterministic RAND"),
        ("select a, current_timestamp() as at from t", "non-deterministic CURRENT_TIMESTAMP"),
        (
            "with recursive r as (select 1 as n union all select n + 1 from r where n < 3) "
            "select n from r",
            "WITH RECURSIVE",
        ),
    ],
)
def test_the_checker_names_each_unsupported_construct(sql: str, construct: str) -> None:
    assert any(f.startswith(construct) for f in unsupported(sql)), unsupported(sql)


def test_what_the_models_rely_on_is_not_flagged() -> None:
    sql = """
        with e as (select * from t qualify row_number() over (partition by id order by ts) = 1),
        p as (select e.id, f.value:id::varchar as pid from e, lateral flatten(input => e.c) as f)
        select p.*, m.user_id from p left join m on p.id = m.id
        where p.ts >= cast('2020-01-01' as timestamp)
        union all select * from (select 1 as id, 'x' as pid, null as user_id)
    """
    assert unsupported(sql) == []


def test_every_incremental_dynamic_table_stays_incremental(snowflake_target: Path) -> None:
    manifest = json.loads((snowflake_target / "manifest.json").read_text())
    checked, problems = 0, {}
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        if node["resource_type"] != "model" or config.get("materialized") != "dynamic_table":
            continue
        if config.get("refresh_mode") != "INCREMENTAL":
            continue
        checked += 1
        if found := unsupported(node["compiled_code"]):
            problems[node["name"]] = found
    assert checked >= 12
    assert not problems, f"would refresh FULL on Snowflake: {problems}"

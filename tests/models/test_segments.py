"""Segments across refreshes (entries, exits, since) and definitions that must fail the build."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlglot

from loader.enriched import Event
from tests.models.conftest import Dbt, compile_for_snowflake

SCHEMA = "derived_segments"  # a copy of the shop's models, so moving the clock harms no one


@pytest.fixture(scope="module")
def two_refreshes(shop: tuple[Dbt, list[Event]]) -> tuple[Dbt, datetime, datetime]:
    """Refresh at the newest event, then again 45 days later: the clock alone moves people."""
    dbt, _ = shop
    con = dbt.connect()
    newest = con.execute("select max(collector_tstamp) from derived.events").fetchone()[0]
    con.close()
    first = newest.replace(microsecond=0)
    later = first + timedelta(days=45)
    refresh = ("build", "--selector", "realtime", "--exclude-resource-type", "test", "unit_test")
    dbt(*refresh, vars={"as_of": str(first)}, schema=SCHEMA)
    dbt(*refresh, vars={"as_of": str(later)}, schema=SCHEMA)
    return dbt, first, later


def test_membership_is_what_the_definitions_select_now(two_refreshes) -> None:
    dbt, _, _ = two_refreshes
    con = dbt.connect()
    members = set(
        con.execute(f"select user_id, segment from {SCHEMA}.segment_membership").fetchall()
    )
    expected = set(
        con.execute(
            f"""
            select user_id, 'lapsed' from {SCHEMA}.profiles where lifecycle_stage = 'lapsed'
            union all
            select user_id, 'champions' from {SCHEMA}.profiles where rfm_segment = 'Champions'
            union all
            select user_id, 'cart_abandoners' from {SCHEMA}.profiles
            where add_to_carts_7d >= 1 and purchases_7d = 0
            """
        ).fetchall()
    )
    listed = {m for m in members if m[1] in ("lapsed", "champions", "cart_abandoners")}
    assert listed == expected
    assert any(s == "lapsed" for _, s in members)


def test_history_records_entries_and_exits_and_keeps_since_for_stayers(two_refreshes) -> None:
    dbt, _, _ = two_refreshes
    con = dbt.connect()
    snapshots = [r[0] for r in con.execute(
        f"select distinct dbt_valid_from from {SCHEMA}.segment_history order by 1"
    ).fetchall()]  # fmt: skip
    assert len(snapshots) == 2
    first, second = snapshots
    changes = con.execute(
        f"select change_type, changed_at, count(*) from {SCHEMA}.segment_changes group by all"
    ).fetchall()
    counts = {(c, t): n for c, t, n in changes}
    # 45 days later no one abandoned a cart last week, and the active have lapsed
    exited = con.execute(
        f"select segment from {SCHEMA}.segment_changes where change_type = 'exit'"
    ).fetchall()
    assert ("cart_abandoners",) in exited
    entered_later = con.execute(
        f"select segment from {SCHEMA}.segment_changes "
        "where change_type = 'enter' and changed_at = ?",
        [second],
    ).fetchall()
    assert ("lapsed",) in entered_later
    assert counts[("exit", second)] > 0 and counts[("enter", first)] > 0
    # Champions are ranked among buyers, whom the clock does not change: they stay, since the first
    stayers = con.execute(
        f"select count(*), min(since), max(since) from {SCHEMA}.segment_membership "
        "where segment = 'champions'"
    ).fetchone()
    assert stayers[0] > 0 and stayers[1] == stayers[2] == first


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        (
            [{"name": "broken", "where": {"no_such_column": 1}}],
            "unknown profiles column 'no_such_column'",
        ),
        ([{"name": "broken", "where": {"revenue": {"~": 1}}}], "unknown operator '~'"),
        ([{"name": "broken", "where": {"revenue": {"in": []}}}], "needs a non-empty list"),
        ([{"name": "broken"}], "needs `where` or `any`"),
        ([{"name": "Broken Name", "where": {"revenue": 1}}], "lower_snake_case"),
        ([{"name": "twice", "where": {"revenue": 1}}] * 2, "defined twice"),
    ],
)
def test_a_bad_definition_fails_the_build_naming_the_segment(
    two_refreshes, segments: list[dict], message: str | None
) -> None:
    dbt, first, _ = two_refreshes
    vars = {"as_of": str(first), "segments": segments, "audiences": []}
    with pytest.raises(AssertionError) as failure:
        dbt("build", "-s", "segment_members", vars=vars, schema=SCHEMA)
    text = str(failure.value)
    assert message in text
    assert segments[0]["name"] in text


def test_an_audience_of_an_unknown_segment_fails_naming_both(two_refreshes) -> None:
    dbt, first, _ = two_refreshes
    vars = {"as_of": str(first), "audiences": [{"name": "ads", "segment": "nobody"}]}
    with pytest.raises(AssertionError, match="audience 'ads': unknown segment 'nobody'"):
        dbt("build", "-s", "audiences", vars=vars, schema=SCHEMA)


def test_a_definition_cannot_inject_sql(two_refreshes) -> None:
    """Values are literals: a quote in one is data, so the statement it tries to end never runs."""
    dbt, first, _ = two_refreshes
    payload = f"x'; drop table {SCHEMA}.profiles; --"
    segments = [{"name": "sneaky", "where": {"top_category": payload}}]
    vars = {"as_of": str(first), "segments": segments, "audiences": []}
    dbt("build", "-s", "segment_members", "--exclude-resource-type", "test", "unit_test",
        vars=vars, schema=SCHEMA)  # fmt: skip
    con = dbt.connect()
    assert con.execute(f"select count(*) from {SCHEMA}.profiles").fetchone()[0] > 0
    assert con.execute(f"select count(*) from {SCHEMA}.segment_members").fetchone()[0] == 0


# Values a segment definition may hold that must stay data on both engines: Snowflake reads
# backslash escapes in '...' literals, DuckDB does not; comments, dollar quotes and line breaks
# mean nothing inside a literal that is escaped right.
HOSTILE = [
    "x\\' or 1=1) --",
    "x' or '1'='1",
    "trailing backslash\\",
    "\\\\ \\x27 \\u0027 \\n: escape sequences as text",
    "-- not a comment",
    "/* not a comment */ or 1=1",
    "two\nlines\r\n\tand a tab",
    "unicode: café ☕ \U0001d518 end",  # (not U+2028: --vars is YAML, which folds it)
    "$$ or 1=1 $$",
    f"'; drop table {SCHEMA}.profiles; --",
]
HOSTILE_SEGMENTS = [
    {"name": f"hostile_{i}", "description": value, "where": {"top_category": value}}
    for i, value in enumerate(HOSTILE)
] + [{"name": "hostile_any", "description": "one of them", "where": {"top_category": HOSTILE}}]


def test_hostile_values_are_data_on_duckdb(two_refreshes) -> None:
    """Each segment selects exactly the user whose top_category is its value, and
    segment_definitions shows each description as written."""
    dbt, first, _ = two_refreshes
    vars = {"as_of": str(first), "segments": HOSTILE_SEGMENTS, "audiences": []}
    dbt("build", "-s", "segment_members", "segment_definitions",
        "--exclude-resource-type", "test", "unit_test", vars=vars, schema=SCHEMA)  # fmt: skip
    con = dbt.connect()
    descriptions = dict(
        con.execute(f"select segment, description from {SCHEMA}.segment_definitions").fetchall()
    )
    assert [descriptions[f"hostile_{i}"] for i in range(len(HOSTILE))] == HOSTILE
    users = [r[0] for r in con.execute(
        f"select user_id from {SCHEMA}.profiles order by user_id limit {len(HOSTILE)}"
    ).fetchall()]  # fmt: skip
    con.execute("begin")  # give users the hostile values for this check only
    for user, value in zip(users, HOSTILE, strict=True):
        con.execute(
            f"update {SCHEMA}.profiles set top_category = ? where user_id = ?", [value, user]
        )
    members = set(con.execute(
        f"select user_id, segment from {SCHEMA}.segment_members where segment like 'hostile%'"
    ).fetchall())  # fmt: skip
    con.execute("rollback")
    expected = {(user, f"hostile_{i}") for i, user in enumerate(users)}
    assert members == expected | {(user, "hostile_any") for user in users}


def _literal(node: sqlglot.exp.Expression) -> str:
    assert isinstance(node, sqlglot.exp.Literal) and node.is_string, node.sql("snowflake")
    return node.this


def _single_comparison(predicate: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
    """The one comparison a `where: {top_category: ...}` compiles to, else fail."""
    predicate = predicate.unnest()
    assert isinstance(predicate, (sqlglot.exp.EQ, sqlglot.exp.In)), predicate.sql("snowflake")
    assert predicate.this == sqlglot.exp.column("top_category")
    return predicate


def test_hostile_values_are_single_literals_on_snowflake(tmp_path) -> None:
    """Compiled for Snowflake, each predicate is one comparison of top_category with a literal
    that Snowflake reads as exactly the value: no extra OR, no comment swallowing the rest."""
    target = compile_for_snowflake(
        tmp_path, "--select", "segment_members", "segment_definitions",
        vars={"segments": HOSTILE_SEGMENTS, "audiences": []},
    )  # fmt: skip
    compiled = target / "compiled" / "persona" / "models" / "segments"
    members = sqlglot.parse_one((compiled / "segment_members.sql").read_text(), read="snowflake")
    assert not [node for node in members.walk() if node.comments]
    predicates = {
        _literal(select.expressions[1].this): select.args["where"].this
        for select in members.find_all(sqlglot.exp.Select)
        if select.args.get("where")  # not the import CTE or the final select *
    }
    assert set(predicates) == {s["name"] for s in HOSTILE_SEGMENTS}
    for i, value in enumerate(HOSTILE):
        comparison = _single_comparison(predicates[f"hostile_{i}"])
        assert isinstance(comparison, sqlglot.exp.EQ)
        assert _literal(comparison.expression) == value
    one_of = _single_comparison(predicates["hostile_any"])
    assert [_literal(item) for item in one_of.expressions] == HOSTILE

    definitions = sqlglot.parse_one(
        (compiled / "segment_definitions.sql").read_text(), read="snowflake"
    )
    rows = {
        _literal(select.expressions[0].this): (
            _literal(select.expressions[1].this), _literal(select.expressions[2].this)
        )
        for select in definitions.find_all(sqlglot.exp.Select)
        if len(select.expressions) == 3
    }  # fmt: skip
    for i, value in enumerate(HOSTILE):
        description, definition = rows[f"hostile_{i}"]
        assert description == value
        # the definition column holds the predicate's SQL: parsed again, the same one comparison
        comparison = _single_comparison(sqlglot.parse_one(definition, read="snowflake"))
        assert _literal(comparison.expression) == value

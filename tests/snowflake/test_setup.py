"""`persona snowflake setup` and `check` against what can run offline: every statement parses
as Snowflake SQL (sqlglot), runs on fakesnow where fakesnow has the statement, and running it
twice changes nothing; the checklist passes what fakesnow can emulate and fails with what to do
where the account is not set up. What fakesnow cannot run is listed here and in
docs/snowflake.md, and checked to be exactly that.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import fakesnow
import pytest
import snowflake.connector
import sqlglot
from sqlglot import exp

from persona.snowflake import check, setup
from persona.snowflake.cli import execute, main
from tests.conftest import ROOT
from tests.snowflake.conftest import FAKESNOW_ARROW_COPY

pytestmark = pytest.mark.filterwarnings(FAKESNOW_ARROW_COPY)

# Statements fakesnow 0.12 has no translation for (it has no roles, grants, warehouses, change
# tracking or policies): they parse, and only a real account runs them.
FAKESNOW_CANNOT = (
    r"create warehouse ",
    r"create role ",
    r"grant ",
    r"alter table \S+ set change_tracking",
    r"create masking policy ",
    r"alter tag ",
)
# What sqlglot parses only as an opaque command (it checks the leading keywords, not the rest).
SQLGLOT_OPAQUE = (
    r"create role ",
    r"grant role ",
    r"grant ownership ",
    r"grant select on (all|future) ",
    r"create masking policy ",
    r"alter tag ",
)


def matches(statement: str, patterns: tuple[str, ...]) -> bool:
    return any(re.match(p, statement) for p in patterns)


def test_every_statement_parses_as_snowflake_sql() -> None:
    for statement in setup.statements():
        tree = sqlglot.parse_one(statement, read="snowflake")
        opaque = isinstance(tree, exp.Command)
        assert opaque == matches(statement, SQLGLOT_OPAQUE), statement


def test_identifiers_are_checked_never_pasted() -> None:
    with pytest.raises(ValueError, match="database 'PERSONA; DROP' is not a plain"):
        setup.Names(database="PERSONA; DROP")
    with pytest.raises(SystemExit):
        main(["setup", "--database", "x y"])


def test_setup_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--database", "analytics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("create database if not exists ANALYTICS;\n")
    assert "alter tag ANALYTICS.GOVERNANCE.PII set masking policy" in out
    assert out.count(";\n") == len(setup.statements(setup.Names("ANALYTICS")))


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """fakesnow behind snowflake.connector.connect, credentials in the environment."""
    for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.setenv(name, "offline")
    with fakesnow.patch(nop_regexes=[p + ".*" for p in FAKESNOW_CANNOT]):
        yield snowflake.connector.connect()


def state(cursor: Any) -> list[tuple[Any, ...]]:
    cursor.execute(
        "select table_schema, table_name, column_name, data_type "
        "from PERSONA.information_schema.columns order by 1, 2, 3"
    )
    return list(cursor.fetchall())


def test_setup_runs_on_fakesnow_and_running_it_twice_changes_nothing(account: Any) -> None:
    assert main(["setup", "--execute"]) == 0
    cursor = account.cursor()
    first = state(cursor)
    cursor.execute(
        "insert into PERSONA.ATOMIC.EVENTS (event_id, collector_tstamp) "
        "values ('e-1', '2026-01-01 00:00:00')"
    )
    assert main(["setup", "--execute"]) == 0
    assert state(cursor) == first and {r[1] for r in first} >= {"EVENTS", "FAILED_EVENTS"}
    cursor.execute("select count(*) from PERSONA.ATOMIC.EVENTS")
    assert cursor.fetchone()[0] == 1  # nothing recreated


def test_what_fakesnow_cannot_run_is_exactly_the_list() -> None:
    """Without the no-ops, exactly the listed statements fail on fakesnow; the rest run."""
    with fakesnow.patch():
        cursor = snowflake.connector.connect().cursor()
        for statement in setup.statements():
            try:
                execute(cursor, [statement], out=io.StringIO())
                ran = True
            except snowflake.connector.errors.ProgrammingError:
                ran = False
            assert ran != matches(statement, FAKESNOW_CANNOT), statement


def test_the_checklist_on_an_empty_account_says_what_to_do(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "[   FAIL] schemas: missing" in out and "fix: persona snowflake setup" in out


def test_the_checklist_after_setup_passes_what_fakesnow_emulates(account: Any) -> None:
    assert main(["setup", "--execute"]) == 0
    results = {r.item: r for r in check.run(account.cursor())}
    for item in ("schemas", "ATOMIC.EVENTS", "ATOMIC.FAILED_EVENTS"):
        assert results[item].status == check.PASS, results[item]
    # fakesnow has no roles, grants, pipes, dynamic tables or policies: asked, not crashed
    for result in results.values():
        assert result.status in (check.PASS, check.FAIL, check.UNKNOWN)
        assert result.status == check.PASS or result.fix, result
    cursor = account.cursor()
    cursor.execute(
        "alter table PERSONA.ATOMIC.EVENTS drop column "
        "contexts_com_snowplowanalytics_snowplow_web_page_1"
    )
    broken = {r.item: r for r in check.run(cursor)}["ATOMIC.EVENTS"]
    assert broken.status == check.FAIL and "web_page_1" in broken.detail


def test_the_docs_list_what_fakesnow_cannot_run() -> None:
    docs = (ROOT / "docs" / "snowflake.md").read_text()
    for pattern in FAKESNOW_CANNOT:
        words = pattern.replace(r" \S+ ", " … ").replace("\\", "").strip().upper()
        assert f"`{words}`" in docs, words


def test_setup_creates_every_entity_column_the_models_read(snowflake_target) -> None:
    """A dynamic table's query is fixed at creation: an entity column a model reads (web,
    ecommerce, mobile, consent) must exist before the first `dbt build`, event or no event."""
    from loader.sinks.snowflake_tables import MODEL_ENTITY_COLUMNS

    entity = re.compile(r"\b(?:contexts|unstruct_event)_com_[a-z0-9_]+?_\d+\b", re.IGNORECASE)
    read = {
        name.lower()
        for path in (snowflake_target / "compiled").rglob("*.sql")
        if "/analyses/" not in str(path) and "/tests/" not in str(path)
        for name in entity.findall(path.read_text())
    }
    assert read, "no entity column found in the compiled models"
    assert read <= set(MODEL_ENTITY_COLUMNS), sorted(read - set(MODEL_ENTITY_COLUMNS))

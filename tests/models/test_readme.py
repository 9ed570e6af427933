"""The SQL examples of the README and docs/ run as written against a built warehouse, and their
answers say something: rows, no column that is null throughout, and money as exact decimals
(the README's own query once printed revenue 503.95000000000005)."""

from __future__ import annotations

import re
from decimal import Decimal

from loader.enriched import Event
from tests.conftest import ROOT
from tests.models.conftest import Dbt

MONEY = re.compile(r"revenue|price|order_value|amount", re.I)


def example_queries() -> list[str]:
    """Every query (select/with) of the sql blocks of README.md and docs/*.md; DDL is left out
    (docs/snowflake.md's setup runs on Snowflake, not here)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [b for p in pages for b in re.findall(r"```sql\n(.*?)```", p.read_text(), re.S)]
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()]
    code = [re.sub(r"^(\s*--[^\n]*\n)*", "", s).lstrip().lower() for s in statements]
    return [s for s, c in zip(statements, code, strict=True) if c.startswith(("select", "with"))]


def test_example_queries_run_and_answer(shop: tuple[Dbt, list[Event]]) -> None:
    dbt, _ = shop
    queries = example_queries()
    assert len(queries) >= 3
    con = dbt.connect()
    for query in queries:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        assert rows, query
        for i, name in enumerate(names):
            values = [r[i] for r in rows if r[i] is not None]
            assert values, f"column {name} is null in every row of: {query}"
            if MONEY.search(name):
                assert all(isinstance(v, Decimal) for v in values), f"{name} is not exact: {query}"

"""The README's SQL examples run as written against a built warehouse."""

from __future__ import annotations

import re

from loader.enriched import Event
from tests.conftest import ROOT
from tests.models.conftest import Dbt


def readme_queries() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [q.strip() for block in blocks for q in block.split(";") if q.strip()]


def test_readme_queries_run_and_return_rows(shop: tuple[Dbt, list[Event]]) -> None:
    dbt, _ = shop
    queries = readme_queries()
    assert len(queries) >= 3
    con = dbt.connect()
    for query in queries:
        assert con.execute(query).fetchall(), query

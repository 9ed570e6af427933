"""The Snowflake option, as far as fakesnow (Snowflake SQL executed by DuckDB, in this
process) allows: the connection is made from the README's SNOWFLAKE_* variables with the
analyst role and qmark parameters, and the Traffic page's SQL runs and shows the numbers the
table holds. Not verified here (fakesnow cannot): key-pair auth, that the role exists and its
masking policies apply, every other page's SQL on real Snowflake."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

fakesnow = pytest.importorskip("fakesnow")

COLUMNS = (
    "session_date date, channel varchar, device_class varchar, engaged_time_band_s int, "
    "sessions int, engaged_sessions int, converted_sessions int, product_view_sessions int, "
    "add_to_cart_sessions int, purchase_sessions int, page_views int, engaged_time_in_s int, "
    "purchases int, revenue number(38, 2), max_load_tstamp timestamp"
)


# fakesnow's own use of DuckDB warns about an extra copy of rows: its business, not ours
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_traffic_page_on_snowflake_through_fakesnow(warehouse: Path, monkeypatch) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select * from derived.sessions_daily").fetchall()
    sessions = sum(r[4] for r in rows)
    with fakesnow.patch():
        import snowflake.connector

        con = snowflake.connector.connect(paramstyle="qmark")
        cur = con.cursor()
        cur.execute("create database persona")
        cur.execute("create schema persona.derived")
        cur.execute(f"create table persona.derived.sessions_daily ({COLUMNS})")
        cur.executemany(
            f"insert into persona.derived.sessions_daily values ({', '.join('?' * 15)})",
            [tuple(float(v) if k == 13 else v for k, v in enumerate(r)) for r in rows],
        )
        monkeypatch.setenv("PERSONA_TARGET", "snowflake")
        monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "offline")
        monkeypatch.setenv("SNOWFLAKE_USER", "analyst")
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
        at.switch_page("views/traffic.py").run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        assert {m.label: m.value for m in at.metric}["Sessions"] == f"{sessions:,}"
        assert len(at.get("vega_lite_chart")) == 5
        assert at.sidebar.caption[0].value == "Reading Snowflake offline as PERSONA_ANALYST"


def test_snowflake_without_its_variables_says_which(monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_TARGET", "snowflake")
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    monkeypatch.delenv("SNOWFLAKE_USER", raising=False)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER is not set" in w.value for w in at.warning)

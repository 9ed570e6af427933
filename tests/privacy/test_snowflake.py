"""The same forget on Snowflake, through the connector, against fakesnow (Snowflake SQL run
on DuckDB: no account is available offline; ARCHITECTURE.md, decision 7). The tables are
copies of the DuckDB warehouse's (their identifier columns, and some others), uppercase as
Snowflake stores names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import fakesnow
import pytest
import snowflake.connector

from privacy import forget as fg
from privacy import ledger
from tests.privacy.conftest import SALT, Built

COPIED = {
    "atomic.events": "event_id, user_id, domain_userid, network_userid, domain_sessionid, "
    "refr_domain_userid, page_url, collector_tstamp",
    "atomic.failed_events": "failed_at, error_type, message, raw",
    "derived.sessions": "domain_sessionid, user_id, domain_userid, network_userid, "
    "stitched_user_id, page_views",
    "derived.identity_map": "device_id_type, device_id, user_id",
    "derived.users": "user_id, first_domain_userid, sessions",
    "derived.traffic_hourly": "bucket_start, app_id, event_name, events",
}


def sql_type(name: str, kind: object) -> str:
    if "tstamp" in name or name.endswith("_at") or name == "bucket_start":
        return "timestamp"
    return "varchar" if "STRING" in str(kind) or kind == "VARCHAR" else "number"


# fakesnow fetches DB-API rows through Arrow, which duckdb 2.0 warns about (not our code)
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_forget_on_snowflake_issues_the_deletes(built: Built, warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as local:
        # the ids the copied columns reveal (the copy leaves out the app's client_session)
        cur = local.cursor()
        found = [dataclasses.replace(t, nested=()) for t in fg.tables(cur)]
        ids = fg.resolve(cur, [built.user], found).ids
        data = {}
        for t, cols in COPIED.items():  # the user's rows and a few others (fakesnow is slow)
            rows = local.execute(f"select {cols} from {t}").fetchall()
            theirs = [r for r in rows if any(i in str(r) for i in ids)]
            data[t] = theirs + [r for r in rows if r not in theirs][:60]
        types = {t: [(d[0], d[1]) for d in local.execute(f"select {cols} from {t} limit 0")
                     .description] for t, cols in COPIED.items()}  # fmt: skip
    with fakesnow.patch():
        con = snowflake.connector.connect(database="PERSONA", schema="ATOMIC", paramstyle="qmark")
        cur = con.cursor()
        for table in COPIED:
            schema = table.split(".")[0]
            cur.execute(f"create schema if not exists {schema}")
            cols = ", ".join(f"{n} {sql_type(n, k)}" for n, k in types[table])
            cur.execute(f"create table {table} ({cols})")
            marks = ", ".join("?" for _ in types[table])
            cur.executemany(f"insert into {table} values ({marks})", [list(r) for r in data[table]])

        def held() -> list[str]:
            found = []
            for table, names in COPIED.items():
                for column in [c.strip() for c in names.split(",")]:
                    held_by = " or ".join(f"contains(cast({column} as varchar), ?)" for _ in ids)
                    cur.execute(f"select count(*) from {table} where {held_by}", sorted(ids))
                    if cur.fetchone()[0]:
                        found.append(f"{table}.{column}")
            return found

        assert "atomic.events.user_id" in held()  # the scan can fail
        outcome = fg.forget(con, fg.Ids("user_id", built.user), "suppress_with_delete",
                            SALT.encode(), engine="snowflake")  # fmt: skip
        assert outcome.request.status == ledger.DONE
        removed = outcome.request.rows_removed
        assert removed["ATOMIC.EVENTS"] > 0 and removed["ATOMIC.FAILED_EVENTS"] == 2
        assert removed["DERIVED.TRAFFIC_HOURLY"] > 0  # emptied: the next refresh rebuilds it
        assert held() == []
        cur.execute("select count(*) from atomic.events")
        assert cur.fetchone()[0] > 0
        again = fg.forget(con, fg.Ids("user_id", "x' or '1'='1"), "delete_only",
                          SALT.encode(), engine="snowflake")  # fmt: skip
        assert again.request.status == ledger.NOTHING
        cur.execute(f"select status from {ledger.REQUESTS} order by requested_at")
        assert [r[0] for r in cur.fetchall()] == [ledger.DONE, ledger.NOTHING]
        cur.execute(f"select count(*) from {ledger.SUPPRESSED}")
        assert cur.fetchone()[0] >= len(ids) - 1
        con.close()


def test_snowflake_target_needs_its_settings(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from persona.cli import main as persona

    for name in ("SNOWFLAKE_ACCOUNT", "PERSONA_PRIVACY_SALT"):
        monkeypatch.delenv(name, raising=False)
    assert persona(["forget", "--user-id", "u1", "--target", "snowflake"]) == 2
    assert "PERSONA_PRIVACY_SALT" in capsys.readouterr().err
    monkeypatch.setenv("PERSONA_PRIVACY_SALT", SALT)
    assert persona(["forget", "--user-id", "u1", "--target", "snowflake"]) == 2
    assert "SNOWFLAKE_ACCOUNT" in capsys.readouterr().err

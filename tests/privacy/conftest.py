"""One warehouse for the privacy tests, built once: the synthetic shop, plus what makes a
forget hard: a device shared with another user, a second device, failed events whose raw
lines carry the user's ids (as is and URL-encoded). Tests work on copies (``warehouse``)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent
from loader.sources.synthetic import SyntheticConfig, generate_lines
from privacy.consent import COLUMN as CONSENT

# fixtures of other areas' tests: the collector process, the live server, redis-server
from tests.loader.conftest import collector, unstarted_collector  # noqa: F401
from tests.models.conftest import Dbt
from tests.serving.conftest import live, redis_url  # noqa: F401

SALT = "privacy-tests-salt-0123456789"
REALTIME = ("build", "--selector", "realtime", "--exclude-resource-type", "test", "unit_test")
AS_OF = {"as_of": "latest_event"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: over ~20 s (runs in CI too)")


@dataclass
class Built:
    path: Path
    user: str  # the user to forget
    other: str  # a user who logged in on one of the user's devices
    shared_device: str
    events: list[Event]


def shop_events() -> tuple[list[Event | FailedEvent], str, str, str]:
    events = [
        parse_line(line) for line in generate_lines(SyntheticConfig(users=30, days=3, seed=7))
    ]
    good = [e for e in events if isinstance(e, dict)]
    by_user: dict[str, list[Event]] = {}
    for e in good:
        if e.get("user_id"):
            by_user.setdefault(e["user_id"], []).append(e)
    user, other = sorted(by_user, key=lambda u: -len(by_user[u]))[:2]
    mine = by_user[user]
    device = mine[0]["domain_userid"]
    late = max(e["collector_tstamp"] for e in good) + timedelta(minutes=5)
    extra: list[Event | FailedEvent] = []
    # the other user logs in on the user's device (a shared computer)
    extra.append(mine[0] | {"event_id": str(uuid.uuid4()), "user_id": other,
                            "domain_sessionid": str(uuid.uuid4()), "collector_tstamp": late,
                            "derived_tstamp": late, "dvce_created_tstamp": late,
                            "dvce_sent_tstamp": late})  # fmt: skip
    # a second device of the user, anonymous first, then logged in
    second = str(uuid.uuid4())
    for i, uid in enumerate((None, user)):
        t = late + timedelta(minutes=i)
        extra.append(mine[-1] | {"event_id": str(uuid.uuid4()), "user_id": uid,
                                 "domain_userid": second, "network_userid": str(uuid.uuid4()),
                                 "domain_sessionid": str(uuid.uuid4()), "collector_tstamp": t,
                                 "derived_tstamp": t, "dvce_created_tstamp": t,
                                 "dvce_sent_tstamp": t})  # fmt: skip
    # consent (the web tracker's consent plugin): the user withdrew, the other allowed all
    for who, kind, t in ((mine[0], "withdrawn", late), (by_user[other][0], "allow_all", late)):
        extra.append(who | {"event_id": str(uuid.uuid4()), "event": "unstruct",
                            "event_name": "consent_preferences", "event_vendor":
                            "com.snowplowanalytics.snowplow", "event_format": "jsonschema",
                            "event_version": "1-0-0", "collector_tstamp": t, "derived_tstamp": t,
                            "dvce_created_tstamp": t, "dvce_sent_tstamp": t,
                            CONSENT: {"_schema_version": "1-0-0", "eventType": kind}})  # fmt: skip
    extra.append(FailedEvent(f"GET /i?e=pv&uid={quote(user)}&duid={second}&p=web",
                             "invalid_payload", "bad", "test"))  # fmt: skip
    extra.append(FailedEvent(f'{{"payload": {{"duid": "{device}"}}}}', "invalid_payload", "bad",
                             "test"))  # fmt: skip
    extra.append(FailedEvent("GET /i?e=pv&uid=someone-else", "invalid_payload", "bad", "test"))
    return [*events, *extra], user, other, device


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    events, user, other, device = shop_events()
    dbt = Dbt(tmp_path_factory.mktemp("privacy") / "warehouse.duckdb")
    dbt.load(events)
    dbt(*REALTIME, vars=AS_OF)
    dbt("build", "--selector", "retrain", "--exclude-resource-type", "test", "unit_test")
    with duckdb.connect(str(dbt.warehouse)) as con:
        con.execute("checkpoint")
    return Built(dbt.warehouse, user, other, device, [e for e in events if isinstance(e, dict)])


@pytest.fixture
def warehouse(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONA_PRIVACY_SALT", SALT)
    to = tmp_path / "warehouse.duckdb"
    shutil.copy(built.path, to)
    return to


def text_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Every text-like column (VARCHAR, JSON, lists) of every table and view."""
    return [tuple(r) for r in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog <> 'temp' and "
        "table_schema not in ('information_schema', 'pg_catalog') and "
        "(data_type in ('VARCHAR', 'JSON') or data_type like '%[]' or data_type like 'STRUCT%'"
        " or data_type like 'MAP%')"
    ).fetchall()]  # fmt: skip


def holders(con: duckdb.DuckDBPyConnection, ids: set[str]) -> list[str]:
    """``schema.table.column`` of every table or view that holds one of ``ids`` anywhere in a
    text column (as a substring: raw lines, JSON and lists included)."""
    con.execute("create or replace temp table scan_ids (id varchar)")
    con.executemany("insert into scan_ids values (?)", [[i] for i in ids])
    found = []
    for schema, table, column in text_columns(con):
        q = f'"{schema}"."{table}"'
        hit = con.execute(
            f'select count(*) from {q} t, scan_ids where contains(cast(t."{column}" as varchar), '
            "scan_ids.id)"
        ).fetchone()[0]
        if hit:
            found.append(f"{schema}.{table}.{column}")
    return found

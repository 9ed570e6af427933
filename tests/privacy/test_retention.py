"""Retention: rows older than each table's period go, the derived models are rebuilt from
what remains, and a mistake in the configuration fails naming the key."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from loader.errors import ConfigError
from persona.cli import main as persona
from privacy import retention


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"retention": {"atomic.events": "13 parsecs"}}, "retention.atomic.events"),
        ({"retention": {"atomic.events": "0 days"}}, "retention.atomic.events"),
        ({"retention": {"interventions": {"keep": "9 days", "colour": "x"}}},
         "retention.interventions.colour"),
        ({"retention": {"interventions": {"column": "fired_at"}}}, "retention.interventions.keep"),
        ({"retention": {"a.b; drop table x": "9 days"}}, "retention.a.b; drop table x"),
        ({"retention": []}, "retention:"),
        ({}, "retention:"),
    ],
)  # fmt: skip
def test_bad_config_fails_naming_the_key(config: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("(", r"\(")):
        retention.parse(config)


def test_defaults() -> None:
    rules = {r.table: r.keep.days for r in retention.parse(None)}
    assert rules == {"atomic.events": 390, "atomic.failed_events": 30, "interventions": 90}


@pytest.mark.slow  # a full refresh of the realtime models
def test_apply_deletes_old_rows_and_the_models_follow(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with duckdb.connect(str(warehouse)) as con:
        newest, oldest = con.execute(
            "select max(collector_tstamp), min(collector_tstamp) from atomic.events"
        ).fetchone()
        con.execute("create table derived.interventions (fired_at timestamp, user_id varchar)")
        con.execute("insert into derived.interventions values (?, 'a'), (?, 'b')",
                    [oldest, newest])  # fmt: skip
        sessions = con.execute("select count(*) from derived.sessions").fetchone()[0]
    cutoff_days = (newest - oldest).days // 2 or 1
    config = warehouse.parent / "retention.yml"
    config.write_text(
        "retention:\n"
        f"  atomic.events: {cutoff_days} days\n"
        "  atomic.failed_events: 30 days\n"
        f"  interventions: {{keep: {cutoff_days} days, column: fired_at}}\n"
    )
    monkeypatch.setenv("PERSONA_DUCKDB", str(warehouse))
    # "now" is the newest event: retention runs as if on the data's last day
    monkeypatch.setattr(retention, "now", lambda: newest)
    assert persona(["retention", "apply", "--config", str(config),
                    "--vars", "{as_of: latest_event}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "atomic.events:" in out and "rebuilt" in out
    cutoff = newest - retention.period(f"{cutoff_days} days", "x")
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select count(*) from atomic.events where collector_tstamp < ?",
                           [cutoff]).fetchone()[0] == 0  # fmt: skip
        assert con.execute("select count(*) from atomic.events").fetchone()[0] > 0
        assert con.execute("select user_id from derived.interventions").fetchall() == [("b",)]
        # the models hold nothing the raw events no longer do
        assert con.execute("select count(*) from derived.events where collector_tstamp < ?",
                           [cutoff]).fetchone()[0] == 0  # fmt: skip
        orphans = con.execute(
            "select count(*) from derived.sessions s where not exists (select 1 from "
            "derived.events e where e.domain_sessionid = s.domain_sessionid)"
        ).fetchone()[0]
        assert orphans == 0
        left = con.execute("select count(*) from derived.sessions").fetchone()[0]
        assert 0 < left < sessions

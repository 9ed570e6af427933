"""The loader's suppression step: a forgotten person's new events are dropped before any
batch, counted, never stored; through the real loader CLI, file source and DuckDB sink."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from loader.__main__ import main as loader_main
from loader.enriched import parse_line
from loader.failed import FailedEvent
from loader.metrics import METRICS
from loader.sources.synthetic import SyntheticConfig, generate_lines
from privacy import forget as fg
from privacy import ledger
from privacy.salt import hash_id
from privacy.suppression import Suppression
from tests.privacy.conftest import SALT

KEY = SALT.encode()


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    lines = list(generate_lines(SyntheticConfig(users=30, days=2, seed=11)))
    path = tmp_path_factory.mktemp("stream") / "events.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path, [e for e in map(parse_line, lines) if isinstance(e, dict)]


def test_events_failed_events_and_timed_entries(stream: tuple[Path, list[dict]]) -> None:
    _, events = stream
    device = events[0]["domain_userid"]
    cutoff = sorted(e["collector_tstamp"] for e in events if e["domain_userid"] == device)[1]
    step = Suppression(KEY, {hash_id(KEY, device): None})
    before = METRICS.events_suppressed
    kept = [e for e in events if step(dict(e)) is not None]
    mine = sum(e["domain_userid"] == device for e in events)
    assert mine and len(kept) == len(events) - mine
    assert METRICS.events_suppressed - before == mine
    # a delete-only request's entry: only events collected up to it
    timed = Suppression(KEY, {hash_id(KEY, device): cutoff})
    dropped = [e for e in events if e["domain_userid"] == device and timed(dict(e)) is None]
    assert {e["collector_tstamp"] <= cutoff for e in dropped} == {True} and len(dropped) == 2
    raw = FailedEvent(f"GET /i?duid={device}&e=pv", "invalid_payload", "bad", "test")
    assert step(raw) is None
    assert step(FailedEvent("GET /i?duid=another&e=pv", "invalid_payload", "bad")) is not None
    assert Suppression(KEY, {})(events[0]) is events[0]  # an empty list costs nothing


def test_the_loader_drops_suppressed_ids_read_from_the_warehouse(
    stream: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m loader`` reads the warehouse's list when it starts; the file source yields
    chunks (the column-by-column path)."""
    monkeypatch.setenv("PERSONA_PRIVACY_SALT", SALT)
    path, events = stream
    users = sorted({e["user_id"] for e in events if e.get("user_id")})
    devices = {
        e["domain_userid"]
        for e in events
        if e.get("user_id") == users[0] and e.get("domain_userid")
    }
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:  # an empty warehouse: suppress_only
        outcome = fg.forget(con, fg.Ids("user_id", users[0]), "suppress_only", KEY)
        assert outcome.request.status == ledger.DONE
        for device in devices:
            fg.forget(con, fg.Ids("domain_userid", device), "suppress_only", KEY)
        stored = {r[0] for r in con.execute(f"select id_hash from {ledger.SUPPRESSED}").fetchall()}
    assert users[0] not in stored and not devices & stored
    before = METRICS.events_suppressed
    args = ["--source", f"file:{path}", "--sink", f"duckdb:{warehouse}", "--quiet"]
    assert loader_main(args) == 0
    mine = sum(e.get("user_id") == users[0] or e["domain_userid"] in devices for e in events)
    assert mine and METRICS.events_suppressed - before == mine
    with duckdb.connect(str(warehouse)) as con:
        loaded = con.execute("select count(*) from atomic.events").fetchone()[0]
        theirs = con.execute(
            "select count(*) from atomic.events where user_id = ? or domain_userid in "
            "(select unnest(?::varchar[]))", [users[0], sorted(devices)]
        ).fetchone()[0]  # fmt: skip
    assert theirs == 0 and loaded == len(events) - mine
    assert "persona_events_suppressed_total" in METRICS.render()


def test_lookup_stays_cheap_with_many_ids(stream: tuple[Path, list[dict]]) -> None:
    """10,000 suppressed hashes: per-event verdicts are cached, so the second pass over the
    same visitors hashes nothing (the bench measures throughput: bench/forget.py)."""
    _, events = stream
    step = Suppression(KEY, {hash_id(KEY, f"id-{i}"): None for i in range(10_000)})
    assert all(step(dict(e)) is not None for e in events)
    cached = len(step._verdicts)
    assert all(step(dict(e)) is not None for e in events)
    assert len(step._verdicts) == cached <= 3 * len(events)

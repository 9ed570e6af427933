"""``python -m loader`` as a user runs it: a real process, real files, stdin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from loader.sources.synthetic import SyntheticConfig, generate_lines


def loader(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loader", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_then_load_from_stdin(tmp_path: Path) -> None:
    generated = loader(
        "generate", "--users", "20", "--days", "2", "--seed", "3", "--end", "2026-01-03"
    )
    assert generated.returncode == 0, generated.stderr
    lines = generated.stdout.splitlines()
    assert lines == list(generate_lines(SyntheticConfig(users=20, days=2, seed=3)))
    db = tmp_path / "w.duckdb"
    stdin = generated.stdout + "not an event\n"
    loaded = loader(
        "--source", "file:-", "--sink", f"duckdb:{db}", "--batch-rows", "100", stdin=stdin
    )
    assert loaded.returncode == 0, loaded.stderr
    assert f"loaded {len(lines):,} events (1 failed)" in loaded.stdout
    con = duckdb.connect(str(db))
    assert con.execute("select count(*) from atomic.events").fetchone() == (len(lines),)
    assert con.execute("select raw, source from atomic.failed_events").fetchall() == [
        ("not an event", "file:-")
    ]


def test_synthetic_source_and_default_sink_from_env(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("PERSONA_DUCKDB", str(db))
    done = loader("--source", "synthetic:?users=10&days=1&seed=1&end=2026-01-02", "--quiet")
    assert done.returncode == 0, done.stderr
    count = duckdb.connect(str(db)).execute("select count(*) from atomic.events").fetchone()[0]
    assert count == sum(1 for _ in generate_lines(SyntheticConfig(users=10, days=1, seed=1)))


def test_bad_settings_fail_fast_and_name_the_setting(tmp_path: Path) -> None:
    sink = f"duckdb:{tmp_path / 'w.duckdb'}"
    cases = {
        ("--source", "ftp://x", "--sink", sink): "--source 'ftp://x' is not a source",
        ("--source", "file:/no/such.tsv", "--sink", sink): "no such file '/no/such.tsv'",
        ("--source", "synthetic:?users=many", "--sink", sink): "users must be an integer",
        ("--source", "synthetic:?colour=red", "--sink", sink): "unknown parameter 'colour'",
        ("--source", "synthetic:?users=0", "--sink", sink): "users",
        # the '?' forgotten: not the default stream loaded without a word
        ("--source", "synthetic:users=10", "--sink", sink): "parameters go after a '?'",
        ("--source", "synthetic:?users=1&users=2", "--sink", sink): "'users' given twice",
        ("--source", "synthetic:?end=last-week", "--sink", sink): "end must be a date",
        (
            "--source",
            "http://127.0.0.1:9/i?x=1",
            "--sink",
            sink,
        ): "no path or parameters ('/i?x=1')",
        ("--source", "file:-", "--sink", "postgres://x"): "--sink 'postgres://x' is not a sink",
        (
            "--source",
            "file:-",
            "--sink",
            sink,
            "--batch-rows",
            "0",
        ): "batch_rows: must be at least 1",
        ("--source", "file:-", "--sink", sink, "--enrichments", "useragent,geo"): (
            "enrichments: unknown ['geo']; choose from"
        ),
        ("--source", "file:-", "--sink", sink, "--spool-max-bytes", "0"): (
            "spool_max_bytes: must be at least 1"
        ),
        ("--source", "file:-", "--sink", sink, "--header-timeout", "0"): (
            "header_timeout: must be more than 0 seconds"
        ),
        ("--source", "file:-", "--sink", sink, "--max-connections", "0"): (
            "max_connections: must be at least 1"
        ),
        ("--source", "file:-", "--sink", sink, "--collector-restarts", "-1"): (
            "collector_restarts: 0 or more"
        ),
    }
    for args, message in cases.items():
        done = loader(*args, stdin="")
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_help_teaches_the_sources() -> None:
    done = loader("--help")
    assert done.returncode == 0
    assert "synthetic:?users=N&days=D&seed=S" in done.stdout
    assert "failed_events" in done.stdout


def test_settings_come_from_file_then_environment_then_flags(tmp_path: Path, monkeypatch) -> None:
    from loader import settings
    from loader.errors import ConfigError

    config = tmp_path / "loader.yml"
    config.write_text(
        "source: file:a.tsv\nbatch_rows: 500\nbatch_seconds: 2\npii_fields: [user_id]\n"
    )
    env = {"PERSONA_BATCH_ROWS": "700", "PERSONA_DUCKDB": "x.duckdb"}
    s = settings.load({"batch_seconds": 0.5}, str(config), env)
    assert (s.source, s.sink, s.batch_rows, s.batch_seconds, s.pii_fields) == (
        "file:a.tsv",
        "duckdb:x.duckdb",
        700,
        0.5,
        ("user_id",),
    )
    config.write_text("source: file:a.tsv\nbatch_size: 5\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['batch_size'\]"):
        settings.load({}, str(config), {})
    with pytest.raises(ConfigError, match="batch_rows \\(from PERSONA_BATCH_ROWS\\): 'many'"):
        settings.load({"source": "file:-"}, None, {"PERSONA_BATCH_ROWS": "many"})
    with pytest.raises(ConfigError, match="source: required"):
        settings.load({}, None, {})
    # an empty variable is unset, except for a list: PERSONA_ENRICHMENTS= turns them all off
    env = {"PERSONA_BATCH_ROWS": "", "PERSONA_ENRICHMENTS": ""}
    s = settings.load({"source": "file:-"}, None, env)
    assert (s.batch_rows, s.enrichments) == (10_000, ())
    assert settings.load({"source": "file:-"}, None, {}).enrichments == settings.ENRICHMENTS


def test_the_example_config_is_valid() -> None:
    from loader import settings
    from tests.conftest import ROOT

    s = settings.load({}, str(ROOT / "loader.example.yml"), {})
    assert s.source.startswith("http://") and s.batch_rows == 10_000
    # the values it shows are the defaults
    assert s == settings.Settings(source=s.source, sink=s.sink)


def test_a_sink_path_that_is_not_a_duckdb_database_is_refused(tmp_path: Path) -> None:
    """DuckDB 2.0 opens an existing .tsv (even an empty one) as an in-memory database of views
    over it: without the check the loader said "loaded 100 events", exited 0 and kept none."""
    lines = list(generate_lines(SyntheticConfig(users=50, days=3, seed=1)))[:100]
    events = tmp_path / "events.tsv"
    events.write_text("\n".join(lines) + "\n")
    targets = {
        tmp_path / "copy.tsv": events.read_bytes(),  # a copy of the input, the likely mix-up
        tmp_path / "empty.tsv": b"",
        tmp_path / "notes.duckdb": b"not a database\n",  # DuckDB's error here read like a lock
    }
    for target, content in targets.items():
        target.write_bytes(content)
        done = loader("--source", f"file:{events}", "--sink", f"duckdb:{target}", "--quiet")
        assert done.returncode == 2, (target, done.stdout)
        assert f"--sink duckdb:{target}: {target} exists and is " in done.stderr, done.stderr
        assert "give the path of a DuckDB database" in done.stderr
        assert "loaded" not in done.stdout and "Traceback" not in done.stderr
        assert target.read_bytes() == content
    db = tmp_path / "new.tsv"  # a new path is a new database, whatever its name
    done = loader("--source", f"file:{events}", "--sink", f"duckdb:{db}", "--quiet")
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db))
    assert con.execute("select count(*) from atomic.events").fetchone() == (100,)
    con.close()
    again = loader("--source", f"file:{events}", "--sink", f"duckdb:{db}", "--quiet")
    assert again.returncode == 0, again.stderr  # an existing database is accepted

"""`persona dashboard`'s own command line: its help, a bad port, and the Streamlit settings it
passes (headless, no usage statistics, no error details) before any server starts."""

from __future__ import annotations

import pytest

from dashboard.__main__ import streamlit_flags
from persona.cli import main


def test_help_names_the_command_and_the_warehouse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert out.startswith("usage: persona dashboard ") and "PERSONA_DUCKDB" in out


def test_a_port_out_of_range_fails_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--port", "70000"])
    assert exited.value.code == 2
    assert "--port: want 1-65535, got 70000" in capsys.readouterr().err


def test_streamlit_runs_headless_without_usage_statistics() -> None:
    flags = streamlit_flags(8501, "127.0.0.1")
    settings = dict(zip(flags[::2], flags[1::2], strict=True))
    assert settings["--server.headless"] == "true"
    assert settings["--browser.gatherUsageStats"] == "false"
    assert settings["--client.showErrorDetails"] == "none"
    assert settings["--server.address"] == "127.0.0.1" and settings["--server.port"] == "8501"


def test_a_live_url_that_is_not_one_fails_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--api", "127.0.0.1:8080"])
    assert exited.value.code == 2
    assert "--api: want a URL like http://127.0.0.1:8080, got '127.0.0.1:8080'" in (
        capsys.readouterr().err
    )

"""The ``persona`` console script: its help teaches, and each command is its package's own."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from loader.__main__ import main as loader_main
from persona.cli import COMMANDS, main
from tests.conftest import ROOT


def test_help_lists_each_command_with_what_it_does_and_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command.name}  " in out
        assert f"e.g. {command.example}" in out
        assert command.example.startswith(f"persona {command.name} ")


def test_no_command_or_an_unknown_one_exits_2_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err
    assert main(["lod"]) == 2
    names = ", ".join(c.name for c in COMMANDS)
    assert names.startswith("load, generate, serve, recs")
    assert f"unknown command 'lod' (choose from {names})" in capsys.readouterr().err


def test_generate_is_the_loaders_generate(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--users", "20", "--days", "2", "--seed", "5"]
    assert main(["generate", *flags]) == 0
    ours = capsys.readouterr().out
    assert loader_main(["generate", *flags]) == 0
    assert ours == capsys.readouterr().out
    assert ours  # the same, non-empty stream


def test_load_reports_a_bad_source_as_the_loader_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = f"duckdb:{tmp_path / 'w.duckdb'}"
    assert main(["load", "--source", "nowhere:x", "--sink", sink]) == 2
    ours = capsys.readouterr().err
    assert loader_main(["--source", "nowhere:x", "--sink", sink]) == 2
    assert ours == capsys.readouterr().err
    assert ours.startswith("error: ")


def test_recs_errors_name_the_persona_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.csv"
    assert main(["recs", "evaluate", "--interactions", str(missing)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("persona recs evaluate: error: ")


def test_help_of_a_command_is_its_packages_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["help", "recs"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: persona recs ")
    for name in ("recommend", "deploy", "export-log", "evaluate", "cadence"):
        assert name in out


def test_the_console_script_is_declared_and_runs_as_a_module() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["persona"] == "persona.cli:main"
    assert pyproject["project"]["name"] == "persona-warehouse"
    for module in ("persona", "persona.cli"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: persona COMMAND"), module


def test_the_old_module_commands_still_answer() -> None:
    for module in ("udfs", "loader"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"python -m {module}" in result.stdout


def test_each_command_says_its_own_name_in_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("load", "generate", "serve"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert capsys.readouterr().out.startswith(f"usage: persona {name} ")

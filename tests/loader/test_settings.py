"""``Settings`` states each default once; ``--help`` and the flags table are made from it."""

from __future__ import annotations

import dataclasses
import re

from loader import settings
from loader.__main__ import _load_parser


def test_help_shows_every_setting_with_its_default() -> None:
    text = " ".join(_load_parser().format_help().split())  # argparse wraps lines
    for f in dataclasses.fields(settings.Settings):
        shown = settings.shown(f.name)
        assert re.search(rf"{settings.flag(f.name)}\b.*?\(default: {re.escape(shown)}\)", text), (
            f.name
        )
    assert "(default: 10000)" in text and "(default: 67108864)" in text  # batch_rows, _bytes


def test_a_changed_default_changes_the_help(monkeypatch) -> None:
    fields = {f.name: f for f in dataclasses.fields(settings.Settings)}
    field = fields["batch_rows"]
    monkeypatch.setattr(field, "default", 1234)
    text = " ".join(_load_parser().format_help().split())
    assert "commit after this many events (default: 1234)" in text


def test_flags_table_has_a_row_per_setting() -> None:
    table = settings.flags_table()
    lines = table.splitlines()
    assert lines[0] == "| flag | environment | default | meaning |"
    rows = {line.split(" | ")[0].strip("| `"): line for line in lines[2:]}
    assert list(rows) == [settings.flag(f.name) for f in dataclasses.fields(settings.Settings)]
    assert (
        "| `--batch-rows` | `PERSONA_BATCH_ROWS` | `10000` | commit after" in rows["--batch-rows"]
    )
    assert "`referrer,campaign,useragent,bots`" in rows["--enrichments"]
    assert "`required`" in rows["--source"]
    assert all(line.count(" | ") == 3 for line in [lines[0], *lines[2:]])  # no stray |


def test_defaults_are_the_settings() -> None:
    """The functions that take a setting default to the setting's default."""
    import inspect

    from loader import pipeline, spool
    from loader.sources import collector

    d = settings.DEFAULT
    run = inspect.signature(pipeline.run).parameters
    assert (run["batch_rows"].default, run["batch_seconds"].default) == (
        d.batch_rows,
        d.batch_seconds,
    )
    assert run["batch_bytes"].default == d.batch_bytes
    assert inspect.signature(spool.Spool).parameters["max_pending_bytes"].default == (
        d.spool_max_bytes
    )
    config = collector.CollectorConfig("h", 1, "s")
    assert config == collector.CollectorConfig.from_settings(
        "h", 1, dataclasses.replace(d, spool="s")
    )


def test_the_docs_flags_table_is_the_generated_one() -> None:
    """docs/loader.md shows the table ``flags_table()`` writes from ``Settings``: a default
    changed in one place is changed in the docs too (regenerate the table when this fails)."""
    from loader.settings import flags_table
    from tests.conftest import ROOT

    assert flags_table().strip() in (ROOT / "docs" / "loader.md").read_text()

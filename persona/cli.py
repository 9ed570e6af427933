"""``persona COMMAND [options]``: the console script.

Each command hands its arguments, untouched, to the command line of the package that owns it,
so every option is defined once, there. A new command is one ``Command`` in ``COMMANDS``: a
name, one line saying what it does, one example, and the function that runs it (imported
lazily, so ``persona --help`` stays fast and a command's optional dependencies stay optional).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DISTRIBUTION = "persona-warehouse"


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    example: str
    run: Callable[[list[str]], int]


def _load(argv: list[str]) -> int:
    from loader.__main__ import main

    return main(["load", *argv], prog="persona load")


def _generate(argv: list[str]) -> int:
    from loader.__main__ import main

    return main(["generate", *argv], prog="persona generate")


def _serve(argv: list[str]) -> int:
    from serving.__main__ import main

    return main(argv, prog="persona serve")


def _dashboard(argv: list[str]) -> int:
    from dashboard.__main__ import main

    return main(argv, prog="persona dashboard")


def _recs(argv: list[str]) -> int:
    from recs.cli import main

    return main(argv, prog="persona recs")


def _mcp(argv: list[str]) -> int:
    from serving.mcp_server import main

    return main(argv, prog="persona mcp")


def _snowflake(argv: list[str]) -> int:
    from persona.snowflake.cli import main

    return main(argv, prog="persona snowflake")


def _forget(argv: list[str]) -> int:
    from privacy.cli import forget_main

    return forget_main(argv, prog="persona forget")


def _retention(argv: list[str]) -> int:
    from privacy.cli import retention_main

    return retention_main(argv, prog="persona retention")


COMMANDS: tuple[Command, ...] = (
    Command(
        "load",
        "stream events into the warehouse: a Snowplow collector, enriched TSV files, CSV "
        "exports, Kafka or the synthetic shop; bad input kept as failed events",
        "persona load --source file:events.tsv --sink duckdb:warehouse.duckdb",
        _load,
    ),
    Command(
        "generate",
        "write the synthetic shop's event stream to stdout as Snowplow enriched TSV",
        "persona generate --users 100 --days 7 --seed 1 > events.tsv",
        _generate,
    ),
    Command(
        "serve",
        "the live process: collector -> DuckDB, dbt refreshes, the online store and the "
        "decision API (Snowplow Signals-compatible); token from PERSONA_API_TOKEN",
        "persona serve --source http://127.0.0.1:9090 --listen 127.0.0.1:8000",
        _serve,
    ),
    Command(
        "recs",
        "recommendations: score a live context (recommend), deploy the Snowflake UDF, "
        "export-log, evaluate the rule sets, backtest a retraining cadence",
        "persona recs recommend --user USER_ID --items sku-0001,sku-0002",
        _recs,
    ),
    Command(
        "mcp",
        "an MCP server for assistants: a user's context, recommendations, segments and why, "
        "anomalies; read-only over the warehouse; stdio, or HTTP with PERSONA_API_TOKEN",
        "persona mcp --transport http --listen 127.0.0.1:8765",
        _mcp,
    ),
    Command(
        "dashboard",
        "a read-only Streamlit app over the warehouse: pipeline, traffic and funnels, "
        "segments, customer 360, anomalies, rule sets",
        "persona dashboard --port 8501",
        _dashboard,
    ),
    Command(
        "snowflake",
        "Snowflake: print (or --execute) the account's idempotent DDL, roles, grants and PII "
        "masking; check a real account read-only against what offline tests cannot prove",
        "persona snowflake setup > setup.sql",
        _snowflake,
    ),
    Command(
        "forget",
        "erase a person: every device stitched to the id, from every table (raw, failed, "
        "derived); audited by salted hash; their new events dropped (suppression)",
        "persona forget --user-id USER_ID",
        _forget,
    ),
    Command(
        "retention",
        "delete rows older than each table's retention (retention.yml), then rebuild the "
        "realtime models from what remains",
        "persona retention apply",
        _retention,
    ),
)

ABOUT = """\
Persona: behavioral events into your warehouse (DuckDB here, Snowflake in production);
dbt models turn them into sessions, profiles, segments and recommendation rule sets."""

AFTERWORD = """\
The models are a dbt project: `dbt build --selector realtime` refreshes them, and
`dbt build --selector retrain` retrains the recommendations. The warehouse is
$PERSONA_DUCKDB (default warehouse.duckdb).
'persona COMMAND --help' shows a command's options. Docs: README.md and docs/."""


def usage() -> str:
    return "usage: persona COMMAND [options]   (persona --help for the commands)"


def help_text() -> str:
    width = max(len(c.name) for c in COMMANDS) + 2
    indent = " " * (2 + width)
    lines = ["usage: persona COMMAND [options]", "", ABOUT, "", "commands:"]
    for c in COMMANDS:
        summary = textwrap.wrap(c.summary, 92 - len(indent))
        lines.append(f"  {c.name:<{width}}{summary[0]}")
        lines += [indent + more for more in summary[1:]]
        lines.append(f"{indent}e.g. {c.example}")
        lines.append("")
    lines.append(AFTERWORD)
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return f"{DISTRIBUTION} {installed(DISTRIBUTION)}"
    except PackageNotFoundError:  # run from a checkout that is not installed
        return f"{DISTRIBUTION} (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(help_text(), file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    if name == "help" and rest:  # persona help recs == persona recs --help
        name, rest = rest[0], ["--help"]
    elif name in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if name == "--version":
        print(version())
        return 0
    for command in COMMANDS:
        if command.name == name:
            return command.run(rest)
    choices = ", ".join(c.name for c in COMMANDS)
    print(f"{usage()}\npersona: error: unknown command {name!r} (choose from {choices})",
          file=sys.stderr)  # fmt: skip
    return 2


if __name__ == "__main__":  # `python -m persona.cli`, as `python -m persona`
    raise SystemExit(main())

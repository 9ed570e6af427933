"""``persona dashboard --port P``: serve the app on http://127.0.0.1:P, headless.

Streamlit's settings are passed as flags (and usage statistics are also switched off through
the environment, which Streamlit reads before any config file), so nothing is written to the
user's ~/.streamlit and a config file there cannot turn the browser or the statistics back
on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dashboard import live

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_flags(port: int, address: str) -> list[str]:
    return [
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--theme.base",
        "light",
    ]


def main(argv: Sequence[str] | None = None, prog: str = "python -m dashboard") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A read-only Streamlit dashboard over the warehouse: pipeline, traffic "
        "and funnels, segments, customer 360, anomalies, rule sets.",
        epilog="The warehouse is $PERSONA_DUCKDB (default warehouse.duckdb), read-only; while "
        "`persona serve` holds it, its published snapshot. PERSONA_TARGET=snowflake reads "
        "Snowflake instead (docs/dashboard.md). example: %(prog)s --port 8501",
    )
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--duckdb", help="warehouse file (default $PERSONA_DUCKDB)")
    parser.add_argument(
        "--api", metavar="URL",
        help=f"the live process's API (default ${live.API_ENV}): the Pipeline page shows its "
        f"refresh, and Customer 360 forgets through it (token from ${live.TOKEN_ENV})",
    )  # fmt: skip
    parser.add_argument(
        "--collector", metavar="URL",
        help=f"the live process's collector (default ${live.COLLECTOR_ENV}): the Pipeline page "
        "shows its and the loader's counters from /metrics",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port: want 1-65535, got {args.port}")
    if args.duckdb:
        os.environ["PERSONA_DUCKDB"] = args.duckdb
    for flag, key in (("api", live.API_ENV), ("collector", live.COLLECTOR_ENV)):
        if getattr(args, flag) is not None:
            try:
                os.environ[key] = live.check_url(f"--{flag}", getattr(args, flag))
            except live.LiveError as exc:
                parser.error(str(exc))
    os.environ["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    os.environ["STREAMLIT_SERVER_HEADLESS"] = "true"
    from streamlit.web import cli

    print(f"persona dashboard: http://{args.address}:{args.port}", file=sys.stderr, flush=True)
    try:
        cli.main(
            ["run", str(APP), *streamlit_flags(args.port, args.address)],
            prog_name=prog,
            standalone_mode=True,
        )
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

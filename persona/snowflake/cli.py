"""``persona snowflake setup|check``: the account's DDL (printed, or run with ``--execute``)
and the read-only first-run checklist. Credentials as the loader's: SNOWFLAKE_ACCOUNT,
SNOWFLAKE_USER, SNOWFLAKE_PRIVATE_KEY_PATH (key-pair auth), SNOWFLAKE_ROLE."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from persona.snowflake import check, connection, setup


def connect(role: str) -> Any:
    """A connector session from the environment (fails naming the missing variable)."""
    import snowflake.connector

    if absent := connection.missing():
        raise SystemExit(f"persona snowflake: set {', '.join(absent)} (key-pair auth)")
    return snowflake.connector.connect(**connection.options(role))


def execute(cursor: Any, statements: list[str], out: Any = sys.stdout) -> None:
    for statement in statements:
        print(f"{statement};", file=out)
        cursor.execute(statement)


def main(argv: list[str] | None = None, prog: str = "persona snowflake") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("setup", "print the account's DDL (idempotent); --execute runs it"),
        ("check", "read-only checklist of what offline tests cannot prove"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--database", default="PERSONA")
        p.add_argument("--warehouse", default="PERSONA_WH")
        p.add_argument("--schema", default="DERIVED", help="the schema dbt builds into")
        if name == "setup":
            p.add_argument(
                "--execute",
                action="store_true",
                help="run it (as SNOWFLAKE_ROLE, default ACCOUNTADMIN)",
            )
    args = parser.parse_args(argv)
    try:
        names = setup.Names(args.database.upper(), args.warehouse.upper(), args.schema.upper())
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "setup":
        statements = setup.statements(names)
        if not args.execute:
            print(setup.script(names), end="")
            return 0
        con = connect("ACCOUNTADMIN")
        try:
            execute(con.cursor(), statements)
        finally:
            con.close()
        return 0
    con = connect("PERSONA_ADMIN")
    try:
        results = check.run(con.cursor(), names)
    finally:
        con.close()
    for result in results:
        print(result.line())
    return 0 if all(r.status == check.PASS for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

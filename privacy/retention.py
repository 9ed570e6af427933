"""Retention: per table, how long rows are kept; ``persona retention apply`` deletes the rest.

The configuration (``retention.yml``, or ``--config``)::

    retention:
      atomic.events: 13 months          # by collector_tstamp
      atomic.failed_events: 30 days     # by failed_at
      interventions: {keep: 90 days, column: fired_at}

A table is ``schema.name``, or a bare name (any schema); a period is ``N days``, ``N weeks``,
``N months`` (30 days) or ``N years`` (365 days). The time column is found for the raw tables
(``collector_tstamp``, ``failed_at``) and otherwise is the table's one timestamp column named
``*_at``/``*_tstamp``, or given. A table the configuration names that does not exist is skipped
(interventions: only where that work is installed). A mistake fails naming the key.

Derived models stay consistent by construction: after the deletes the realtime models are
rebuilt with a full refresh (``dbt build --selector realtime --full-refresh``), which is what
a daily job can afford and an incremental run cannot do (it only ever adds keys). ``apply`` is
the step a live process calls once a day; it returns what it deleted.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loader.errors import ConfigError
from privacy.forget import quote
from privacy.ledger import now

DEFAULTS: dict[str, Any] = {
    "atomic.events": "13 months",
    "atomic.failed_events": "30 days",
    "interventions": "90 days",
}
KNOWN_COLUMNS = {"events": "collector_tstamp", "failed_events": "failed_at"}
_PERIOD = re.compile(r"\s*(\d+)\s*(day|week|month|year)s?\s*", re.IGNORECASE)
_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


@dataclass(frozen=True)
class Rule:
    table: str  # schema.name or name
    keep: timedelta
    column: str | None = None


def period(value: Any, key: str) -> timedelta:
    m = _PERIOD.fullmatch(str(value)) if isinstance(value, str | int) else None
    if m is None or int(m[1]) <= 0:
        raise ConfigError(f"retention.{key}: a period like '30 days' or '13 months', "
                          f"not {value!r}")  # fmt: skip
    return timedelta(days=int(m[1]) * _DAYS[m[2].lower()])


def parse(config: Mapping[str, Any] | None) -> list[Rule]:
    """Rules from a parsed YAML document (``retention:`` at its top); defaults if None."""
    section: Any = DEFAULTS if config is None else config.get("retention")
    if not isinstance(section, Mapping) or not section:
        raise ConfigError("retention: a mapping of table -> period (e.g. atomic.events: 13 months)")
    rules = []
    for table, spec in section.items():
        if not isinstance(table, str) or not re.fullmatch(r"\w+(\.\w+)?", table):
            raise ConfigError(f"retention.{table}: a table, schema.name or name")
        column = None
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"keep", "column"}
            if unknown:
                raise ConfigError(f"retention.{table}.{sorted(unknown)[0]}: unknown key "
                                  "(keep, column)")  # fmt: skip
            if "keep" not in spec:
                raise ConfigError(f"retention.{table}.keep: missing (e.g. keep: 90 days)")
            column = spec.get("column")
            if column is not None and not (
                isinstance(column, str) and re.fullmatch(r"\w+", column)
            ):
                raise ConfigError(f"retention.{table}.column: a column name, not {column!r}")
            keep = period(spec["keep"], f"{table}.keep")
        else:
            keep = period(spec, table)
        rules.append(Rule(table, keep, column))
    return rules


def load(path: Path | None) -> list[Rule]:
    import yaml

    if path is None:
        default = Path("retention.yml")
        if not default.exists():
            return parse(None)
        path = default
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"--config {path}: retention: a mapping of table -> period")
    return parse(doc)


def _tables(cur: Any, rule: Rule) -> list[tuple[str, str, str]]:
    """(schema, table, time column) of the tables ``rule`` names."""
    schema, _, name = rule.table.rpartition(".")
    cur.execute(
        "select table_schema, table_name, column_name, upper(data_type) from "
        "information_schema.columns where table_name = ? and (? = '' or table_schema = ?) "
        "order by table_schema, ordinal_position",
        [name, schema, schema],
    )
    by_table: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for s, t, c, kind in cur.fetchall():
        by_table.setdefault((s, t), []).append((c, kind))
    found = []
    for (s, t), cols in by_table.items():
        names = {c for c, _ in cols}
        column = rule.column or KNOWN_COLUMNS.get(t)
        if column is None:
            stamps = [c for c, kind in cols if kind.startswith("TIMESTAMP")
                      and (c.endswith("_at") or c.endswith("tstamp"))]  # fmt: skip
            if len(stamps) != 1:
                raise ConfigError(f"retention.{rule.table}.column: {s}.{t} has "
                                  f"{len(stamps)} timestamp columns; name one")  # fmt: skip
            column = stamps[0]
        if column not in names:
            raise ConfigError(f"retention.{rule.table}.column: {s}.{t} has no column {column}")
        found.append((s, t, column))
    return found


def apply(con: Any, rules: Sequence[Rule], at: datetime | None = None,
          checkpoint: bool = True) -> dict[str, int]:  # fmt: skip
    """Delete what each rule no longer keeps; one transaction per table. Returns rows deleted
    per table. The caller rebuilds the derived models (``refresh``) when anything went."""
    at = at or now()
    cur = con.cursor()
    deleted: dict[str, int] = {}
    for rule in rules:
        for schema, table, column in _tables(cur, rule):
            cutoff = at - rule.keep
            target = f"{quote(schema)}.{quote(table)}"
            cur.execute("begin transaction")
            cur.execute(f"select count(*) from {target} where {quote(column)} < ?", [cutoff])
            n = int(cur.fetchall()[0][0])
            if n:
                cur.execute(f"delete from {target} where {quote(column)} < ?", [cutoff])
            cur.execute("commit")
            deleted[f"{schema}.{table}"] = n
    if checkpoint and any(deleted.values()):
        cur.execute("checkpoint")
    return deleted


def refresh(warehouse: str, vars: Mapping[str, Any] | None = None) -> None:
    """The realtime models rebuilt from the remaining events (in this process)."""
    import json
    import tempfile

    from dbt.cli.main import dbtRunner

    from recs.dbt_invoke import environment, failures
    from serving.batch import ROOT

    with tempfile.TemporaryDirectory() as work:
        import shutil

        shutil.copy(ROOT / "profiles.example.yml", Path(work) / "profiles.yml")
        extra = ["--vars", json.dumps(dict(vars))] if vars else []
        with environment({"PERSONA_DUCKDB": warehouse, "PERSONA_TARGET": "duckdb"}):
            result = dbtRunner().invoke(
                ["build", "--selector", "realtime", "--full-refresh", "--exclude-resource-type",
                 "test", "unit_test", *extra, "--project-dir", str(ROOT), "--profiles-dir", work,
                 "--target-path", f"{work}/target", "--log-path", f"{work}/logs", "--quiet"]
            )  # fmt: skip
    if not result.success:
        raise ConfigError(f"the full refresh after retention failed: {failures(result)}")


def main(argv: Sequence[str], prog: str = "persona retention") -> int:
    import os
    import sys

    from loader.errors import PersonaError
    from privacy.cli import Busy, open_warehouse

    p = argparse.ArgumentParser(prog=prog, description="Delete rows older than each table's "
                                "retention (retention.yml, or the defaults: raw events 13 "
                                "months, failed events 30 days, interventions 90 days), then "
                                "rebuild the realtime models from what remains.")  # fmt: skip
    p.add_argument("action", choices=["apply", "show"])
    p.add_argument("--config", type=Path, help="a YAML file with a retention: mapping")
    p.add_argument("--warehouse", default=None, help="a DuckDB file ($PERSONA_DUCKDB)")
    p.add_argument(
        "--no-refresh",
        action="store_true",
        help="delete only; rebuild the models yourself (dbt build --full-refresh)",
    )
    p.add_argument("--vars", default=None, help="dbt --vars for the refresh (YAML)")
    args = p.parse_args(argv)
    warehouse = args.warehouse or os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb")
    try:
        rules = load(args.config)
        if args.action == "show":
            for rule in rules:
                print(f"{rule.table}: {rule.keep.days} days"
                      + (f" by {rule.column}" if rule.column else ""))  # fmt: skip
            return 0
        con = open_warehouse(warehouse)
        try:
            deleted = apply(con, rules)
        finally:
            con.close()
        for table, n in deleted.items():
            print(f"{table}: {n:,} rows older than its retention deleted")
        if any(deleted.values()) and not args.no_refresh:
            import yaml

            refresh(warehouse, yaml.safe_load(args.vars) if args.vars else None)
            print("realtime models rebuilt from the remaining events")
    except Busy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except PersonaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

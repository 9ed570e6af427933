"""python -m udfs: serve, deploy and measure the recommendation rule sets.

The rule sets are dbt models (models/recommendations, tag `retrain`). Build a version first:

    dbt build --selector retrain                    # a new rule-set version, published last

Then:

    python -m udfs recommend --items sku-0001,sku-0002 [--user U] [--k 10]
        score a live context on DuckDB through SQL: registers persona_recommend on the
        warehouse ($PERSONA_DUCKDB) and calls it with the session items and the user's
        affinities from derived.interactions
    python -m udfs deploy --target snowflake
        publish the served rule set to a stage (@persona_rules/<version>/) and (re)register
        the Snowpark UDF persona_recommend; run after each retrain (SNOWFLAKE_* variables as
        for dbt)
    python -m udfs export-log --out log.csv
        the warehouse's product events as an interaction log user_id,item_id,timestamp,weight
    python -m udfs evaluate --interactions log.csv --k 10 --split stratified --ratio 0.75
        split per user, retrain the same dbt models on the training part in a scratch DuckDB,
        score MAP, nDCG@k, Precision@k, Recall@k (Microsoft Recommenders' definitions) next
        to a popularity baseline; --json prints one object
    python -m udfs cadence [--interactions log.csv] --out cadence.png
        backtest retraining every hour/day/week/month: next-period nDCG@k against training
        cost, a chart, and the cadence where a higher frequency stops paying

Any command that retrains takes --var KEY=VALUE to override a dbt var (e.g. recs_similarity=lift).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def _vars(pairs: list[str]) -> dict[str, Any]:
    from udfs.evaluate import InputError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"argument --var: want KEY=VALUE, got {pair!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not YAML"
            raise InputError(f"argument --var: {key}'s value {value!r}: {problem}") from None
    return out


# Flag types: argparse reports a value they refuse as "argument --k: <message>", exit code 2.
def _count(text: str) -> int:
    """A whole number >= 1 (k, slots)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"want a whole number >= 1, got {text!r}")
    return value


def _number(accepted: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """A flag type for a finite number that ``ok`` accepts, ``accepted`` saying which."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"want {accepted}, got {text!r}")
        return value

    return parse


_share = _number("a number between 0 and 1 (exclusive)", lambda v: 0 < v < 1)  # training share
_positive = _number("a number > 0", lambda v: v > 0)  # days, hours
_non_negative = _number("a number >= 0", lambda v: v >= 0)  # a relative gain


def _cadences(text: str) -> str:
    """A comma-separated subset of hour, day, week, month."""
    from udfs.cadence import PERIODS

    if not set(text.split(",")) <= set(PERIODS):
        raise argparse.ArgumentTypeError(
            f"want a comma-separated list of {', '.join(PERIODS)}, got {text!r}"
        )
    return text


def _warehouse(args: argparse.Namespace) -> str:
    return args.duckdb or os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb")


def cmd_recommend(args: argparse.Namespace) -> int:
    import duckdb

    from udfs.duckdb import register

    con = duckdb.connect(_warehouse(args), read_only=True)
    rules = register(con)
    items = [i for i in (args.items or "").split(",") if i]
    row = con.execute(
        "select persona_recommend(?, list(product_id), list(affinity), ?) "
        "from derived.interactions where user_id = ?",
        [items, args.k, args.user],
    ).fetchone()
    print(json.dumps({"rule_set_version": rules.version, "recommendations": row[0]}, indent=2))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.target != "snowflake":
        print(
            "DuckDB functions live in a connection: the serving process calls "
            "udfs.duckdb.register(con) after each retrain (see `recommend`).",
            file=sys.stderr,
        )
        return 2
    from udfs import snowflake

    session = snowflake.session_from_env()
    rules = snowflake.load_rule_set(session, args.schema)
    snowflake.deploy(session, rules, stage=args.stage, name=args.name)
    print(f"deployed {args.name} with rule-set version {rules.version} from @{args.stage}")
    return 0


def cmd_export_log(args: argparse.Namespace) -> int:
    import csv

    import duckdb

    from udfs.cadence import events_log

    rows = events_log(duckdb.connect(_warehouse(args), read_only=True))
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "timestamp", "weight"])
        writer.writerows(rows)
    print(f"{len(rows):,} interactions -> {args.out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from udfs.evaluate import evaluate, read_log

    report = evaluate(
        read_log(Path(args.interactions)),
        k=args.k,
        how=args.split,
        ratio=args.ratio,
        dbt_vars=_vars(args.var),
    )
    if args.json:
        print(json.dumps(report))
        return 0
    k = args.k
    print(f"{report['rows']:,} interactions, {report['users']:,} test users, "
          f"{args.split} split {args.ratio}, k={k}, {report['seconds']:.1f} s")  # fmt: skip
    print(f"{'metric':<14}{'persona':>10}{'popularity':>12}")
    for key in ("map", f"map@{k}", f"ndcg@{k}", f"precision@{k}", f"recall@{k}"):
        print(f"{key:<14}{report[key]:>10.4f}{report['baseline'][key]:>12.4f}")
    return 0


def cmd_cadence(args: argparse.Namespace) -> int:
    import duckdb

    from udfs.cadence import backtest, events_log, plot
    from udfs.evaluate import read_log

    if args.interactions:
        rows = read_log(Path(args.interactions))
    else:
        rows = events_log(duckdb.connect(_warehouse(args), read_only=True))
    report = backtest(
        rows,
        cadences=tuple(args.cadences.split(",")),
        backtest_days=args.backtest_days,
        slots=args.slots,
        horizon_hours=args.horizon_hours,
        k=args.k,
        min_gain=args.min_gain,
        dbt_vars=_vars(args.var),
    )
    report["png"] = str(plot(report, args.k, Path(args.out)))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'cadence':<8}{'nDCG@' + str(args.k):>10}{'s/retrain':>11}{'s/day':>10}")
    for r in report["results"]:
        print(f"{r['cadence']:<8}{r[f'ndcg@{args.k}']:>10.4f}{r['retrain_seconds']:>11.2f}"
              f"{r['cost_seconds_per_day']:>10.1f}")  # fmt: skip
    print(f"recommended: {report['recommended']} ({report['rule']}); chart: {report['png']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m udfs",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("recommend", help="score a live context through SQL on DuckDB")
    p.add_argument("--duckdb", help="warehouse file (default $PERSONA_DUCKDB or warehouse.duckdb)")
    p.add_argument("--items", help="the session's items, comma-separated")
    p.add_argument("--user", help="the stitched user id whose affinities count")
    p.add_argument("--k", type=_count, default=10)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("deploy", help="publish the rule set and (re)register the Snowpark UDF")
    p.add_argument("--target", choices=["snowflake", "duckdb"], required=True)
    p.add_argument("--schema", default="derived", help="where current_* views are")
    p.add_argument("--stage", default="persona_rules")
    p.add_argument("--name", default="persona_recommend")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("export-log", help="product events as an interaction log CSV")
    p.add_argument("--duckdb", help="warehouse file (default $PERSONA_DUCKDB or warehouse.duckdb)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export_log)

    p = sub.add_parser("evaluate", help="offline quality of the dbt rule sets on a log")
    p.add_argument("--interactions", required=True,
                   help="CSV user_id,item_id,timestamp[,weight]")  # fmt: skip
    p.add_argument("--k", type=_count, default=10)
    p.add_argument("--split", choices=["stratified", "temporal"], default="stratified")
    p.add_argument("--ratio", type=_share, default=0.75, help="training share per user")
    p.add_argument("--var", action="append", default=[], help="dbt var override KEY=VALUE")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("cadence", help="backtest retraining cadences: quality vs cost")
    p.add_argument("--interactions", help="CSV log (default: the warehouse's product events)")
    p.add_argument("--duckdb", help="warehouse file (default $PERSONA_DUCKDB or warehouse.duckdb)")
    p.add_argument("--cadences", type=_cadences, default="hour,day,week,month")
    p.add_argument("--backtest-days", type=_positive, default=7)
    p.add_argument("--slots", type=_count, default=8, help="evaluation times in the backtest")
    p.add_argument("--horizon-hours", type=_positive, default=24, help="the next period scored")
    p.add_argument("--k", type=_count, default=10)
    p.add_argument("--min-gain", type=_non_negative, default=0.02,
                   help="relative nDCG gain that pays for a more frequent cadence")  # fmt: skip
    p.add_argument("--out", default="cadence.png")
    p.add_argument("--var", action="append", default=[], help="dbt var override KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cadence)

    args = parser.parse_args(argv)
    from udfs.evaluate import InputError

    try:
        return args.func(args)
    except InputError as exc:  # a bad log or value: one line, exit 2, as argparse does
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

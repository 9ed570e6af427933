"""The recommendation commands: score, deploy, export, evaluate, backtest a cadence.

The rule sets are dbt models (models/recommendations, tag `retrain`). Build a version first:

    dbt build --selector retrain                    # a new rule-set version, published last

Then (as `persona recs COMMAND`, or `python -m udfs COMMAND`):

    recommend --user USER_ID --items sku-0001,sku-0002 [--k 10] [--json]
        score a live context on DuckDB through SQL: registers persona_recommend on the
        warehouse ($PERSONA_DUCKDB) and calls it with the session items and the user's
        affinities from derived.interactions; prints each item's name and why it is there
    deploy --target snowflake
        publish the served rule set to a stage (@persona_rules/<version>/) and (re)register
        the Snowpark UDF persona_recommend; run after each retrain (SNOWFLAKE_* variables as
        for dbt)
    export-log --out log.csv
        the warehouse's product events as an interaction log user_id,item_id,timestamp,weight
    evaluate --interactions log.csv --k 10 --split stratified --ratio 0.75
        split (per user; temporal also one global time cut), retrain the same dbt models on
        the training part in a scratch DuckDB, score MAP, nDCG@k, Precision@k, Recall@k
        (Microsoft Recommenders' definitions) next to popularity and buy-again baselines;
        --json prints one object
    tune [--interactions log.csv] [--max-retrains 16] [--dry-run]
        a bounded search over the rule set's parameters (similarity, half-life, neighbours,
        buy-again on/off and its blend), each scored by nDCG@k after one time cut on the
        warehouse's events; writes the chosen values into dbt_project.yml (recs_tuning says
        when and how well), which the next retrain records and cadence uses
    cadence [--interactions log.csv] [--out cadence.png]
        backtest retraining every hour/day/week/month: next-period nDCG@k against training
        cost, the cadence where a higher frequency stops paying, and with --out a chart (the
        `plots` extra: pip install -e '.[plots]')

Any command that retrains takes --var KEY=VALUE to override a dbt var (e.g. recs_similarity=lift).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from recs.evaluate import InputError


def _vars(pairs: list[str]) -> dict[str, Any]:
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
    from recs.cadence import PERIODS

    if not set(text.split(",")) <= set(PERIODS):
        raise argparse.ArgumentTypeError(
            f"want a comma-separated list of {', '.join(PERIODS)}, got {text!r}"
        )
    return text


def _warehouse(args: argparse.Namespace) -> str:
    return args.duckdb or os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb")


def _connect(args: argparse.Namespace) -> Any:
    import duckdb

    path = _warehouse(args)
    if not Path(path).is_file():
        raise InputError(f"{path}: no such warehouse (run `make demo`, or set PERSONA_DUCKDB)")
    return duckdb.connect(path, read_only=True)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


# --- recommend --------------------------------------------------------------------------------

PRODUCT_NAMES = """
select product_id, max(product_name) as product_name, max(category) as category
from derived.product_events
where product_id in (select unnest(?))
group by product_id
"""


PURCHASES = """
select product_id, repeatable_events, first_repeatable_at, last_repeatable_at
from derived.interactions where user_id = ? and repeatable_events > 0
"""


def _user_context(con: Any, user: str | None, items: list[str]) -> tuple[dict[str, float], str]:
    """The user's affinities, and a note saying what the context is when it is thin."""
    affinities = dict(
        con.execute(
            "select product_id, affinity from derived.interactions where user_id = ?", [user]
        ).fetchall()
    )
    fallback = "scoring the session's items alone" if items else "showing the most popular items"
    if user is None:
        return affinities, f"no --user: {fallback}"
    if affinities:
        return affinities, ""
    known = con.execute("select count(*) from derived.users where user_id = ?", [user]).fetchone()
    if known and known[0]:
        why = f"user {user!r} has no product interactions in the rule set's training window"
    else:
        why = f"user {user!r} is unknown (not in derived.users)"
    return affinities, f"{why}: {fallback}"


def _purchases(con: Any, user: str | None) -> dict[str, tuple[int, float, float]]:
    """What the user bought (events of a recs_recommend_again type): times, and days since the
    first and the latest, measured from now (a live call)."""
    now = datetime.now(UTC).replace(tzinfo=None)

    def days(at: datetime) -> float:
        return (now - at).total_seconds() / 86400

    rows = con.execute(PURCHASES, [user]).fetchall()
    return {item: (n, days(first), days(last)) for item, n, first, last in rows}


def _why(reason: str, detail: str | None) -> str:
    """A recommendation's reason as a page would say it."""
    if reason == "similar_to":
        return f"similar to {detail}"
    if reason == "buy_again":
        return "buy again"
    return "popular" if detail in (None, "*") else f"popular in {detail}"


def cmd_recommend(args: argparse.Namespace) -> int:
    from udfs.duckdb import WITH_PURCHASES, register

    con = _connect(args)
    rules = register(con)
    items = [i for i in (args.items or "").split(",") if i]
    affinities, note = _user_context(con, args.user, items)
    purchases = _purchases(con, args.user)
    unknown_items = [i for i in items if i not in rules.neighbours]
    [scored] = con.execute(
        f"select {WITH_PURCHASES}(?, ?, ?, ?, ?, ?, ?, ?)",
        [items, list(affinities), list(affinities.values()), list(purchases),
         [p[0] for p in purchases.values()], [p[1] for p in purchases.values()],
         [p[2] for p in purchases.values()], args.k],
    ).fetchone()  # fmt: skip
    ids = [r["product_id"] for r in scored]
    names = {r[0]: r[1:] for r in con.execute(PRODUCT_NAMES, [ids]).fetchall()}
    recommendations = [
        {
            "rank": rank,
            "product_id": r["product_id"],
            "product_name": names.get(r["product_id"], (None, None))[0],
            "category": names.get(r["product_id"], (None, None))[1],
            "score": r["score"],
            "reason": r["reason"],
            "reason_detail": r["reason_detail"],
            "from": _why(r["reason"], r["reason_detail"]),
        }
        for rank, r in enumerate(scored, 1)
    ]
    notes = [note] if note else []
    if unknown_items:
        notes.append(f"not in rule set {rules.version} (no neighbours): {', '.join(unknown_items)}")
    if args.json:
        report = {"rule_set_version": rules.version, "user": args.user, "items": items,
                  "notes": notes, "recommendations": recommendations}  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    for line in notes:
        print(f"note: {line}", file=sys.stderr)
    title = f"recommendations for {args.user or 'an anonymous visitor'}"
    table = Table(title=title, caption=f"rule set {rules.version}")
    for column in ("rank", "product_id", "product_name", "category", "score", "from"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for r in recommendations:
        table.add_row(str(r["rank"]), r["product_id"], r["product_name"] or "", r["category"] or "",
                      f"{r['score']:.3f}", r["from"])  # fmt: skip
    Console().print(table)
    return 0


# --- deploy, export-log -----------------------------------------------------------------------


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

    from recs.cadence import events_log

    rows = events_log(_connect(args))
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "timestamp", "weight", "event_type"])
        writer.writerows(rows)
    print(f"{len(rows):,} interactions -> {args.out}", file=sys.stderr)
    return 0


# --- evaluate, cadence ------------------------------------------------------------------------


@contextmanager
def _retrain_progress(what: str) -> Iterator[Callable[[int, int, datetime], None]]:
    """A progress bar on stderr (when it is a terminal) fed by ``backtest``'s callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = _stderr()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=not console.is_terminal, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(what, total=None)

        def update(done: int, total: int, boundary: datetime) -> None:
            label = "done" if done == total else f"training up to {boundary:%Y-%m-%d %H:%M}"
            progress.update(task, completed=done, total=total, description=f"{what}: {label}")

        yield update


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recs.evaluate import evaluate, read_log

    rows = read_log(Path(args.interactions))
    console = _stderr()
    status = console.status(f"retraining on {len(rows):,} interactions, then scoring")
    with status if console.is_terminal else nullcontext():
        report = evaluate(
            rows, k=args.k, how=args.split, ratio=args.ratio, dbt_vars=_vars(args.var)
        )
    if args.json:
        print(json.dumps(report))
        return 0
    k = args.k
    print(f"{report['rows']:,} interactions, ratio {args.ratio}, k={k}, "
          f"{report['seconds']:.1f} s")  # fmt: skip
    for name, part in report["splits"].items():
        cut = f", train up to {part['cut']}" if "cut" in part else ""
        print(f"\n{name} split: {part['users']:,} test users{cut}")
        print(f"{'metric':<14}{'persona':>10}{'popularity':>12}{'buy-again':>11}")
        for key in ("map", f"map@{k}", f"ndcg@{k}", f"precision@{k}", f"recall@{k}"):
            base = part["baselines"]
            print(f"{key:<14}{part[key]:>10.4f}{base['popularity'][key]:>12.4f}"
                  f"{base['buy_again'][key]:>11.4f}")  # fmt: skip
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from recs import tune
    from recs.cadence import events_log
    from recs.evaluate import read_log

    project = Path(args.project_file)
    if not project.is_file():
        raise InputError(f"{project}: no such dbt_project.yml (see --project-file)")
    rows = read_log(Path(args.interactions)) if args.interactions else events_log(_connect(args))
    with _retrain_progress("tuning retrains") as progress:
        report = tune.tune(
            rows, k=args.k, ratio=args.ratio, max_retrains=args.max_retrains,
            base_vars=tune.project_vars(project), dbt_vars=_vars(args.var),
            progress=lambda done, total, _: progress(done, total, datetime.now()),
        )  # fmt: skip
    if not args.dry_run:
        report["written"] = tune.write(project, report)
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    k = args.k
    print(f"{len(report['trials'])} retrains, {report['test_users']:,} users scored after "
          f"{report['cut']}, {report['seconds']:.1f} s")  # fmt: skip
    print(f"{'':<22}{'nDCG@' + str(k):>10}{'recall@' + str(k):>11}")
    print(f"{'tuned':<22}{report[f'ndcg@{k}']:>10.4f}{report[f'recall@{k}']:>11.4f}")
    print(f"{'current values':<22}{report['default'][f'ndcg@{k}']:>10.4f}"
          f"{report['default'][f'recall@{k}']:>11.4f}")  # fmt: skip
    for name, b in report["baselines"].items():
        print(f"{name.replace('_', '-') + ' baseline':<22}{b[f'ndcg@{k}']:>10.4f}"
              f"{b[f'recall@{k}']:>11.4f}")  # fmt: skip
    for name, value in report["chosen"].items():
        print(f"  {name}: {json.dumps(value)}")
    if args.dry_run:
        print("chosen values not written (--dry-run)")
    else:
        print(f"chosen values written to {project}; the next retrain records them and their "
              "score in rule_set_versions")  # fmt: skip
    return 0


def cmd_cadence(args: argparse.Namespace) -> int:
    from recs.cadence import backtest, events_log, plot, require_plots
    from recs.evaluate import read_log
    from recs.tune import project_vars, recommend_again

    if args.out:
        require_plots()  # before the backtest, which takes minutes
    rows = read_log(Path(args.interactions)) if args.interactions else events_log(_connect(args))
    with _retrain_progress("backtest retrains") as progress:
        report = backtest(
            rows,
            cadences=tuple(args.cadences.split(",")),
            backtest_days=args.backtest_days,
            slots=args.slots,
            horizon_hours=args.horizon_hours,
            k=args.k,
            min_gain=args.min_gain,
            dbt_vars=_vars(args.var),
            progress=progress,
            repeats=recommend_again(project_vars() | _vars(args.var)),
        )
    if args.out:
        report["png"] = str(plot(report, args.k, Path(args.out)))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'cadence':<8}{'nDCG@' + str(args.k):>10}{'s/retrain':>11}{'s/day':>10}")
    for r in report["results"]:
        print(f"{r['cadence']:<8}{r[f'ndcg@{args.k}']:>10.4f}{r['retrain_seconds']:>11.2f}"
              f"{r['cost_seconds_per_day']:>10.1f}")  # fmt: skip
    chart = f"; chart: {report['png']}" if args.out else ""
    print(f"recommended: {report['recommended']} ({report['rule']}){chart}")
    return 0


# --- the parser -------------------------------------------------------------------------------

WAREHOUSE_HELP = "warehouse file (default $PERSONA_DUCKDB or warehouse.duckdb)"
ROOT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project.yml"


def add_commands(sub: Any) -> None:
    """Add recommend, deploy, export-log, evaluate, cadence and tune to ``sub`` (a subparsers
    action), so that `persona recs` and `python -m udfs` share one definition."""
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "recommend", help="score a live context through SQL on DuckDB", formatter_class=raw,
        description="Score the session's items and the user's affinities against the served "
        "rule set, through the persona_recommend SQL function.",
        epilog="example: %(prog)s --user USER_ID --items sku-0001,sku-0002 --k 5",
    )  # fmt: skip
    p.add_argument("--duckdb", help=WAREHOUSE_HELP)
    p.add_argument("--items", help="the session's items, comma-separated")
    p.add_argument("--user", help="the stitched user id whose affinities count")
    p.add_argument("--k", type=_count, default=10)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser(
        "deploy", help="publish the rule set and (re)register the Snowpark UDF",
        formatter_class=raw, epilog="example: %(prog)s --target snowflake",
    )  # fmt: skip
    p.add_argument("--target", choices=["snowflake", "duckdb"], required=True)
    p.add_argument("--schema", default="derived", help="where current_* views are")
    p.add_argument("--stage", default="persona_rules")
    p.add_argument("--name", default="persona_recommend")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser(
        "export-log", help="product events as an interaction log CSV", formatter_class=raw,
        epilog="example: %(prog)s --out log.csv",
    )  # fmt: skip
    p.add_argument("--duckdb", help=WAREHOUSE_HELP)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export_log)

    p = sub.add_parser(
        "evaluate", help="offline quality of the dbt rule sets on a log", formatter_class=raw,
        epilog="example: %(prog)s --interactions log.csv --k 10 --split temporal",
    )  # fmt: skip
    p.add_argument("--interactions", required=True,
                   help="CSV user_id,item_id,timestamp[,weight]")  # fmt: skip
    p.add_argument("--k", type=_count, default=10)
    p.add_argument(
        "--split",
        choices=["stratified", "temporal", "global"],
        default="stratified",
        help="per user at random, per user by time (adds `global`), or one time cut",
    )
    p.add_argument("--ratio", type=_share, default=0.75, help="training share per user")
    p.add_argument("--var", action="append", default=[], help="dbt var override KEY=VALUE")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "cadence", help="backtest retraining cadences: quality vs cost", formatter_class=raw,
        epilog="example: %(prog)s --cadences day,week --out cadence.png",
    )  # fmt: skip
    p.add_argument("--interactions", help="CSV log (default: the warehouse's product events)")
    p.add_argument("--duckdb", help=WAREHOUSE_HELP)
    p.add_argument("--cadences", type=_cadences, default="hour,day,week,month")
    p.add_argument("--backtest-days", type=_positive, default=7)
    p.add_argument("--slots", type=_count, default=8, help="evaluation times in the backtest")
    p.add_argument("--horizon-hours", type=_positive, default=24, help="the next period scored")
    p.add_argument("--k", type=_count, default=10)
    p.add_argument("--min-gain", type=_non_negative, default=0.02,
                   help="relative nDCG gain that pays for a more frequent cadence")  # fmt: skip
    p.add_argument("--out", help="draw the chart to this PNG (needs the `plots` extra)")
    p.add_argument("--var", action="append", default=[], help="dbt var override KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cadence)

    p = sub.add_parser(
        "tune", help="search the rule set's parameters on a backtest; write the best",
        formatter_class=raw,
        description="A bounded search over similarity, half-life, neighbours and buy-again "
        "(on/off, blend weight, horizon), each candidate a real retrain scored by nDCG@k after "
        "one global time cut; writes the chosen values into dbt_project.yml's vars.",
        epilog="example: %(prog)s --max-retrains 12 --dry-run",
    )  # fmt: skip
    p.add_argument("--interactions", help="CSV log (default: the warehouse's product events)")
    p.add_argument("--duckdb", help=WAREHOUSE_HELP)
    p.add_argument("--k", type=_count, default=10)
    p.add_argument("--ratio", type=_share, default=0.8, help="share of the history before the cut")
    p.add_argument("--max-retrains", type=_count, default=16)
    p.add_argument("--project-file", default=str(ROOT_PROJECT), help="the dbt_project.yml to write")
    p.add_argument("--dry-run", action="store_true", help="report, write nothing")
    p.add_argument("--var", action="append", default=[], help="dbt var override KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)


def main(argv: Sequence[str] | None = None, prog: str = "python -m udfs") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except InputError as exc:  # a bad log or value: one line, exit 2, as argparse does
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2

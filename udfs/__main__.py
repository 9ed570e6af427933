"""``python -m udfs``: kept as an alias of ``persona recs`` (``recs.cli``): recommend, deploy,
export-log, evaluate, cadence."""

from recs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m udfs"))

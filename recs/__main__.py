"""``python -m recs``: the same commands as ``persona recs`` (see ``recs.cli``)."""

from recs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m recs"))

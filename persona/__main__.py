"""``python -m persona``: the same as the ``persona`` console script."""

from persona.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""The ``persona`` command: one entry point over the loader and the recommendation tools.

``persona.cli`` holds the subcommands; each delegates to its package's own command line
(``loader.__main__``, ``recs.cli``), so ``python -m loader`` and ``python -m udfs`` stay the
same commands under another name.
"""

"""The functions deployed into warehouses: they score the recommendation rule sets of
models/recommendations for a live context.

- ``core``: score a live context (session items + user affinities) against an item-similarity
  rule set; pure Python, no dependencies, so the same code runs in DuckDB and in Snowflake.
- ``duckdb``: the core registered as a DuckDB SQL function, ``persona_recommend``.
- ``snowflake``: the rule set published to a stage and the core deployed as a Snowpark UDF.

Offline work (retrain, evaluate, cadence) is in ``recs``; ``persona recs --help`` (or
``python -m udfs --help``, an alias) lists the commands.
"""

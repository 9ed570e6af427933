"""Serving and measuring the recommendation rule sets of models/recommendations.

- ``core``: score a live context (session items + user affinities) against an item-similarity
  rule set; pure Python, no dependencies, so the same code runs in DuckDB and in Snowflake.
- ``duckdb``: the core registered as a DuckDB SQL function, ``persona_recommend``.
- ``snowflake``: the rule set published to a stage and the core deployed as a Snowpark UDF.
- ``retrain``: runs the project's dbt retrain (the same models) on a scratch DuckDB file.
- ``metrics``, ``evaluate``, ``cadence``: offline quality, and how often to retrain.

``python -m udfs --help`` lists the commands.
"""

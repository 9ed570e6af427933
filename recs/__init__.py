"""Offline recommendation work: retrain the rule sets, measure them, choose a cadence.

The rule sets themselves are dbt models (models/recommendations); the functions that score
them inside a warehouse are ``udfs``. This package runs beside them, never inside a warehouse:

- ``retrain``: the project's dbt retrain (the same models) on a scratch DuckDB file.
- ``metrics``: ranking metrics as Microsoft Recommenders defines them.
- ``evaluate``: split an interaction log, retrain, score; ``cadence``: how often to retrain.
- ``dbt_invoke``: run dbt in-process (the environment, and a failed run as a message).
- ``cli``: the commands of ``persona recs`` (and of ``python -m udfs``, kept as an alias).
- ``kernels``: the retrain's two inner loops, compiled, which the DuckDB Python models import
  (dbt-duckdb runs them in the dbt process: still not inside a warehouse).
"""

"""Privacy by construction: forget a user everywhere Persona stores them (``forget``), keep
them forgotten (``suppression``, a step of the loader's validate pipeline), keep data only as
long as allowed (``retention``), and record each request without the ids (``audit``).

The loader's pseudonymization of fields stays in ``loader/privacy.py``; this package is about
people, not fields. docs/privacy.md describes the guarantees and what remains where.
"""

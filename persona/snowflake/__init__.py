"""Persona on Snowflake: the account's objects (``setup``) and a read-only first-run checklist
(``check``), run by ``persona snowflake``. docs/snowflake.md says what each step is for."""

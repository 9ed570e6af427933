# Persona: `make demo` runs the whole demo on embedded DuckDB, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PERSONA_DUCKDB ?= warehouse.duckdb
export PERSONA_DUCKDB
# About 226,000 events: 2,000 shoppers over 30 days, on the web and in the apps.
DEMO_SOURCE ?= synthetic:?users=2000&days=30&seed=0

BROWSER := tests/browser

.PHONY: demo live test lint bench clean

# uv when it is there (or can be installed from PyPI), plain venv + pip otherwise. Bytecode is
# compiled at install (pip does it anyway): where PYTHONDONTWRITEBYTECODE is set, as on CI
# machines, every process would otherwise compile pandas, dbt and the rest from source on import
# (5.3 s against 3.0 s to import pandas, pyarrow, duckdb and dbt, measured here).
$(VENV)/.installed: pyproject.toml
	@if command -v uv >/dev/null 2>&1; then UV=uv; \
	elif $(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install -q uv >/dev/null 2>&1; then UV="$(PY) -m uv"; \
	else UV=; fi; \
	if [ -n "$$UV" ]; then \
	  $$UV venv -q --allow-existing --python $(PY) $(VENV) && \
	  $$UV pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'; \
	else \
	  $(PY) -m venv $(VENV) && $(BIN)/pip install -q -e '.[dev]'; \
	fi
	@touch $@

profiles.yml:
	cp profiles.example.yml profiles.yml

# The real Snowplow browser tracker for the headless Chromium test, pinned by package-lock.json.
# Without npm the browser test skips (it fails instead under CI, where .ci/run installs npm).
$(BROWSER)/node_modules/.installed: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(BROWSER) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the browser tracker test will skip"; fi

# Each step says what it does; the summary ends with three things to try (as the README does).
demo: $(VENV)/.installed profiles.yml
	@echo "== 1/4 A fresh warehouse, $(PERSONA_DUCKDB): loading the synthetic shop's events"
	rm -f $(PERSONA_DUCKDB) $(PERSONA_DUCKDB).wal
	$(BIN)/persona load --source '$(DEMO_SOURCE)' --sink duckdb:$(PERSONA_DUCKDB)
	@echo "== 2/4 dbt build --selector realtime: sessions, users, profiles, segments, audiences, anomalies (a minute or two)"
	$(BIN)/dbt build --quiet --selector realtime --vars '{as_of: latest_event}'
	@echo "== 3/4 dbt build --selector retrain: a recommendation rule-set version"
	$(BIN)/dbt build --quiet --selector retrain
	@echo "== 4/4 What was built"
	$(BIN)/python scripts/demo_summary.py $(PERSONA_DUCKDB)

# The live loop on the demo warehouse (built first when missing): the collector on :9090, the
# API on :8080, two synthetic visits a second arriving now. Ctrl-C stops it; the token is this
# run's unless PERSONA_API_TOKEN is set.
live: $(VENV)/.installed profiles.yml
	@test -f $(PERSONA_DUCKDB) || $(MAKE) --no-print-directory demo
	@export PERSONA_API_TOKEN=$${PERSONA_API_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(18))')}; \
	echo "== the live loop: collector http://127.0.0.1:9090, API http://127.0.0.1:8080, token $$PERSONA_API_TOKEN"; \
	echo "   then, in another terminal: README.md, 'The live loop' (a decision, the SDK)"; \
	exec $(BIN)/persona serve --source http://127.0.0.1:9090 --listen 127.0.0.1:8080 --simulate 2

# The dashboard over $(PERSONA_DUCKDB), read-only (docs/dashboard.md): http://127.0.0.1:8501
DASHBOARD_PORT ?= 8501
.PHONY: dashboard
dashboard: $(VENV)/.installed
	$(BIN)/persona dashboard --port $(DASHBOARD_PORT)

test: $(VENV)/.installed profiles.yml $(BROWSER)/node_modules/.installed
	$(BIN)/python -m pytest -q --durations=30

lint: $(VENV)/.installed profiles.yml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/sqlfluff lint models macros

bench: $(VENV)/.installed profiles.yml
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(BROWSER)/node_modules target logs .pytest_cache .ruff_cache .hypothesis bench/out
	rm -f warehouse.duckdb warehouse.duckdb.wal profiles.yml

# CareLens: `make run` serves the app on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test migrate lint messages bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# torch comes from the `train` extra (CPU wheel): the training smoke tests need it.
$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,train]'
	touch $(VENV)/.runtime $@

# axe-core and lighthouse for the browser checks (npm writes this file on every install).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

install: $(VENV)/.runtime
install-test: $(VENV)/.test node_modules/.package-lock.json

migrate: install
	$(BIN)/carelens migrate

run: install
	HOST=$(HOST) PORT=$(PORT) $(BIN)/carelens serve

# pytest exits 5 when it collects no test: that stays a failure here.
test: install-test
	$(BIN)/python -m pytest -q -ra

# ruff pinned: a newer release brings new default rules and formatting.
lint: install-test
	$(BIN)/pip install -q ruff==0.17.6 && $(BIN)/ruff check backend tests training bench

# Re-extract translatable strings and merge them into the Korean catalog.
messages: install-test
	$(BIN)/pybabel extract -F babel.cfg -k N_ -o backend/locale/messages.pot .
	$(BIN)/pybabel update -i backend/locale/messages.pot -d backend/locale -D messages --no-fuzzy-matching

clean:
	rm -rf $(VENV) .pytest_cache

# gridrider — the two commands: `make up` (run everything) and `make test` (run every test).
# Only Python 3.11+ and access to PyPI are needed; everything else is installed into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Tests use DATABASE_URL / REDIS_URL when set, else embedded servers; -n spreads them over the cores.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: up test install install-test lint lock bench clean

up: install
	$(BIN)/gridrider up --demo

test: install-test
	$(BIN)/ruff check backend tests
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Locked, hash-checked dependencies; the project itself editable (no build step to rerun).
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-test: requirements-test.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed

lint: install-test
	$(BIN)/ruff check backend tests

# Re-resolve the lock files after changing dependencies in pyproject.toml.
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements-test.lock -q

# Benchmarks print figures; they are not part of `make test`. make bench NAME=jobs
bench: install
	$(BIN)/gridrider bench $(or $(NAME),list)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
